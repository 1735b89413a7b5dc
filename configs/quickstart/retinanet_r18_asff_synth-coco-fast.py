# Fast quickstart (./retinanet_r18_fpn_synth-coco-fast.py) with the ASFF neck of every
# FPN + ASFF config (../_base_/necks/asff.py) after the FPN, at its width.
#   python tools/demo.py --neck asff
_base_ = ['./retinanet_r18_fpn_synth-coco-fast.py', '../_base_/necks/asff.py']
model = dict(neck=[
    _base_.model.neck,
    dict(_base_.asff_neck, in_channels=_base_.model.neck.out_channels),
])
