# Quickstart: YOLOv3 Darknet-53 + ASFF (the official module) on the synthetic COCO set: the
# YOLOv3 quickstart (./yolov3_d53_synth-coco.py) with only the neck changed, as
# ../asff/yolov3_d53-asff_8xb8-ms-608-273e_coco.py changes it.
_base_ = ['./yolov3_d53_synth-coco.py', '../_base_/necks/asff_yolov3.py']
model = dict(neck=[_base_.model.neck, _base_.asff_neck])
