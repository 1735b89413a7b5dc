# AutoFocusFormer-Mini with the point-based Mask2Former head, Cityscapes 512x1024, alpha 8
# (paper Table 4). Only the backbone differs from the Tiny config (drop path 0 as the
# official Mini configs).
_base_ = './mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = 'https://docs-assets.developer.apple.com/ml-research/models/aff/classification/aff_mini.pth'  # noqa
model = dict(
    backbone=dict(
        arch='mini', drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[32, 128, 256, 384]))
