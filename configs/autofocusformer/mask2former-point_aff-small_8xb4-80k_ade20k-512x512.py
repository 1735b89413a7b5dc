# AutoFocusFormer-Small with the point-based Mask2Former head on ADE20K 512x512 (paper
# Table 3: 51.2 mIoU, 87G FLOPs). Only the backbone differs from the Tiny config.
_base_ = './mask2former-point_aff-tiny_8xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = 'https://docs-assets.developer.apple.com/ml-research/models/aff/classification/aff_small.pth'  # noqa
model = dict(
    backbone=dict(
        arch='small', drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
