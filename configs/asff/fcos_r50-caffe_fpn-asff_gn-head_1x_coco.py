# FCOS R50 (caffe) + FPN + ASFF over all five FPN outputs (P3-P7); GN inside ASFF.
_base_ = ['../fpn/fcos_r50-caffe_fpn_gn-head_1x_coco.py', '../_base_/necks/asff.py']
model = dict(neck=[_base_.model.neck, _base_.asff_neck])
