"""Backbones as plain PyTorch modules (registered by ``fusion_necks.registry``)."""
