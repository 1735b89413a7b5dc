# Semantic FPN R-50 + FPN+FINE, Cityscapes 512x1024, 80k iterations (FINE paper Table 7:
# 28.5M -> 30.1M, 74.5 -> 76.4 mIoU). Only the neck changes: mmseg's FPN -> mmseg's
# FINEFPN (FINE at the low-stride-16 and -8 steps, plain addition at stride 4).
_base_ = '../fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py'
# FINEFPN's defaults are the paper's (spelled out in ./faster-rcnn_r50_fpn-fine_1x_coco.py)
model = dict(neck=dict(type='FINEFPN'))
