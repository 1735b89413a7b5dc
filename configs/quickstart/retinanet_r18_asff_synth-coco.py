# Quickstart / demo: RetinaNet R-18 + FPN + ASFF on the synthetic COCO set (CPU):
# the FPN quickstart (./retinanet_r18_fpn_synth-coco.py) with only the neck changed, the
# ASFF neck of every FPN + ASFF config (../_base_/necks/asff.py) at the FPN's width.
#   python tools/demo.py --neck asff      (make demo NECK=asff)
_base_ = ['./retinanet_r18_fpn_synth-coco.py', '../_base_/necks/asff.py']
model = dict(neck=[
    _base_.model.neck,
    dict(_base_.asff_neck, in_channels=_base_.model.neck.out_channels),
])
