# RetinaNet R50 + FPN + ASFF over all five FPN outputs (P3-P7).
# ASFF runs after the FPN (mmdet chains a list of necks); the head is unchanged.
# GN instead of the official BN: 2 images per GPU (see docs/asff.md; BN: the -bn ablation).
_base_ = './retinanet_r50_fpn_1x_coco.py'
model = dict(
    neck=[
        _base_.model.neck,
        dict(
            type='ASFFNeck',
            in_channels=256,
            num_levels=5,
            compress_c=16,
            weight_mode='full',
            norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
            level_names=['P3', 'P4', 'P5', 'P6', 'P7']),
    ])
custom_imports = dict(imports=['fusion_necks'], allow_failed_imports=False)
