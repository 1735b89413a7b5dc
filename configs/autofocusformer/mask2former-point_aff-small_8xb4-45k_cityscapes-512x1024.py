# AutoFocusFormer-Small with the point-based Mask2Former head, Cityscapes 512x1024, alpha 8
# (paper Table 4). Only the backbone differs from the Tiny config (layer scale 1e-5 comes
# with the 'small' preset; drop path 0.3 as the official configs).
_base_ = './mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = 'https://docs-assets.developer.apple.com/ml-research/models/aff/classification/aff_small.pth'  # noqa
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
