# Faster R-CNN R50 + FPN + ASFF over all five FPN outputs (P2-P6; P6 is FPN's max-pool of P5).
# Costly at P2 (see docs/asff.md); the -p3p5 variant is the cheap one.
_base_ = ['../fpn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/necks/asff.py']
model = dict(neck=[
    _base_.model.neck,
    dict(_base_.asff_neck, level_names=['P2', 'P3', 'P4', 'P5', 'P6']),
])
