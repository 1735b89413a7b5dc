# AutoFocusFormer-Mini with the 1/5 downsampling rate (16384/3276/655/131 tokens at 512x512)
# in UPerNet on ADE20K. Only the backbone differs from upernet_aff-tiny_*.py.
_base_ = ['./upernet_aff-tiny_8xb2-160k_ade20k-512x512.py',
          '../_base_/models/aff-mini-1-5th.py']
checkpoint_file = _base_.aff_mini_1_5th_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=_base_.aff_mini_1_5th_backbone,   # arch, drop path, checkpoint
    decode_head=dict(in_channels=[32, 128, 256, 384]),
    auxiliary_head=dict(in_channels=256))
