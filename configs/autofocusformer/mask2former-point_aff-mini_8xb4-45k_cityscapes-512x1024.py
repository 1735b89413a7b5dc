# AutoFocusFormer-Mini with the point-based Mask2Former head, Cityscapes 512x1024, alpha 8
# (paper Table 4). Only the backbone differs from the Tiny config (drop path 0 as the
# official Mini configs).
_base_ = ['./mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py',
          '../_base_/models/aff-mini.py']
checkpoint_file = _base_.aff_mini_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=_base_.aff_mini_backbone,   # arch, drop path, checkpoint
    decode_head=dict(in_channels=[32, 128, 256, 384]))
