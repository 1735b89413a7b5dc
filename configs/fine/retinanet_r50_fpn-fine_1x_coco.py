# RetinaNet R-50 + FPN+FINE, COCO 1x (FINE paper Table 1: +1.0M, 36.4 -> 37.3 AP).
# Only the neck changes. RetinaNet's FPN starts at C3, so its two top-down steps
# (low strides 16 and 8) both get FINE.
_base_ = '../fpn/retinanet_r50_fpn_1x_coco.py'
# FINEFPN's defaults are the paper's (spelled out in ./faster-rcnn_r50_fpn-fine_1x_coco.py)
model = dict(neck=dict(type='FINEFPN'))
