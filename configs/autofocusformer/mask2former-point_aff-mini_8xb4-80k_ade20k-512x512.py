# AutoFocusFormer-Mini with the point-based Mask2Former head on ADE20K 512x512 (paper
# Table 3: 46.5 mIoU, 48.3G FLOPs). Only the backbone differs from the Tiny config.
_base_ = ['./mask2former-point_aff-tiny_8xb4-80k_ade20k-512x512.py',
          '../_base_/models/aff-mini.py']
checkpoint_file = _base_.aff_mini_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=_base_.aff_mini_backbone,   # arch, drop path, checkpoint
    decode_head=dict(in_channels=[32, 128, 256, 384]))
