# Phase 1 of BAFF-SkipNet: the same encoder warm-up as SkipNet's phase 1 (BAFF and the
# fusion decoder only appear in phase 2). When comparing the two, train phase 1 once and
# give its checkpoint to both phase-2 configs (`--cfg-options load_from=...`).
_base_ = './skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024.py'
