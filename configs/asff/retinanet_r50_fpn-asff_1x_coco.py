# RetinaNet R50 + FPN + ASFF over all five FPN outputs (P3-P7).
# ASFF runs after the FPN (mmdet chains a list of necks); the head is unchanged.
# The ASFF neck (GN, compress 16, full weights) is ../_base_/necks/asff.py.
_base_ = ['../fpn/retinanet_r50_fpn_1x_coco.py', '../_base_/necks/asff.py']
model = dict(neck=[_base_.model.neck, _base_.asff_neck])
