# AutoFocusFormer-Mini with the 1/5 downsampling rate (16384/3276/655/131 tokens at 512x512)
# in UPerNet on ADE20K. Only the backbone differs from upernet_aff-tiny_*.py.
_base_ = './upernet_aff-tiny_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = 'https://docs-assets.developer.apple.com/ml-research/models/aff/classification/aff_mini_1_5th.pth'  # noqa
model = dict(
    backbone=dict(
        arch='mini_1_5th',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    decode_head=dict(in_channels=[32, 128, 256, 384]),
    auxiliary_head=dict(in_channels=256))
