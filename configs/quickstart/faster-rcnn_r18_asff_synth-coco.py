# Quickstart: Faster R-CNN R-18 + FPN + ASFF (P2-P6) on the synthetic COCO set: the Faster
# R-CNN quickstart (./faster-rcnn_r18_fpn_synth-coco.py) with only the neck changed, as
# ../asff/faster-rcnn_r50_fpn-asff_1x_coco.py changes it. Slow on a CPU (mmcv's CPU RoIAlign).
_base_ = ['./faster-rcnn_r18_fpn_synth-coco.py', '../_base_/necks/asff.py']
model = dict(neck=[
    _base_.model.neck,
    dict(_base_.asff_neck, in_channels=_base_.model.neck.out_channels,
         level_names=['P2', 'P3', 'P4', 'P5', 'P6']),
])
