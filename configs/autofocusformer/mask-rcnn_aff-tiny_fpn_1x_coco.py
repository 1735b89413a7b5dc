# AutoFocusFormer-Tiny in Mask R-CNN with FPN (COCO, 1x), next to mmdet's Swin-T config:
# the backbone returns dense stride 4/8/16/32 maps (out_dense=True), FPN is unchanged.
# The backbone dict (arch, ImageNet checkpoint) is ../_base_/models/aff-tiny.py; drop path
# 0.2 here instead of its 0.3.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/models/aff-tiny.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = _base_.aff_tiny_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=dict(_base_.aff_tiny_backbone, _delete_=True, drop_path_rate=0.2),
    neck=dict(in_channels=[64, 128, 256, 512]))
