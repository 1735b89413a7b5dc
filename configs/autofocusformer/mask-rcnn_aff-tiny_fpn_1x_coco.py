# AutoFocusFormer-Tiny in Mask R-CNN with FPN (COCO, 1x), next to mmdet's Swin-T config:
# the backbone returns dense stride 4/8/16/32 maps (out_dense=True), FPN is unchanged.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = 'https://docs-assets.developer.apple.com/ml-research/models/aff/classification/aff_tiny.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='AutoFocusFormer',
        arch='tiny',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint_file)),
    neck=dict(in_channels=[64, 128, 256, 512]))
