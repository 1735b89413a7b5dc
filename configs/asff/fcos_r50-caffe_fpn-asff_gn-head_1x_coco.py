# FCOS R50 (caffe) + FPN + ASFF over all five FPN outputs (P3-P7); GN inside ASFF.
_base_ = './fcos_r50-caffe_fpn_gn-head_1x_coco.py'
model = dict(
    neck=[
        _base_.model.neck,
        dict(
            type='ASFFNeck',
            in_channels=256,
            num_levels=5,
            norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
            level_names=['P3', 'P4', 'P5', 'P6', 'P7']),
    ])
custom_imports = dict(imports=['fusion_necks'], allow_failed_imports=False)
