# YOLOv3 Darknet-53 + ASFF: the official YOLOv3-ASFF module after mmdet's YOLOV3Neck
# (../_base_/necks/asff_yolov3.py explains the channels and why there is no expand conv).
_base_ = ['./yolov3_d53_8xb8-ms-608-273e_coco.py', '../_base_/necks/asff_yolov3.py']
model = dict(neck=[_base_.model.neck, _base_.asff_neck])
