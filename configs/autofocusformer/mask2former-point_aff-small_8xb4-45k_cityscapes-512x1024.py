# AutoFocusFormer-Small with the point-based Mask2Former head, Cityscapes 512x1024, alpha 8
# (paper Table 4). Only the backbone differs from the Tiny config (layer scale 1e-5 comes
# with the 'small' preset; drop path 0.3 as the official configs).
_base_ = ['./mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py',
          '../_base_/models/aff-small.py']
checkpoint_file = _base_.aff_small_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=_base_.aff_small_backbone,   # arch, drop path, checkpoint
    decode_head=dict(in_channels=[96, 192, 384, 768]))
