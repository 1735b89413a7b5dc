"""Pure-PyTorch building blocks on point tokens (no OpenMMLab imports)."""
