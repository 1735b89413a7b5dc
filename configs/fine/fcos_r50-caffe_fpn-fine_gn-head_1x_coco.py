# FCOS R-50 (caffe) + FPN+FINE, GN head, COCO 1x (FINE paper Table 1: +1.0M,
# 39.2 -> 39.8 AP). Only the neck changes (start_level=1: both steps get FINE).
_base_ = '../fpn/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
# FINEFPN's defaults are the paper's (spelled out in ./faster-rcnn_r50_fpn-fine_1x_coco.py)
model = dict(neck=dict(type='FINEFPN'))
