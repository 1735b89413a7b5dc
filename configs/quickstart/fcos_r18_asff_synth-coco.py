# Quickstart: FCOS R-18 + FPN + ASFF (P3-P7) on the synthetic COCO set (CPU): the FCOS
# quickstart (./fcos_r18_fpn_synth-coco.py) with only the neck changed, as
# ../asff/fcos_r50-caffe_fpn-asff_gn-head_1x_coco.py changes it (ASFF at the FPN's width).
#   python tools/demo.py --config configs/quickstart/fcos_r18_asff_synth-coco.py
_base_ = ['./fcos_r18_fpn_synth-coco.py', '../_base_/necks/asff.py']
model = dict(neck=[
    _base_.model.neck,
    dict(_base_.asff_neck, in_channels=_base_.model.neck.out_channels),
])
