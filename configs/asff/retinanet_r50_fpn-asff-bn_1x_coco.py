# Ablation (one key): BN inside ASFF (the official norm) instead of GN.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(
    neck=[
        _base_.model.neck[0],
        dict(_base_.model.neck[1], norm_cfg=dict(type='BN', requires_grad=True)),
    ])
