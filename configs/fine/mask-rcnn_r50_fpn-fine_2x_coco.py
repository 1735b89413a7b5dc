# Mask R-CNN R-50 + FPN+FINE, COCO 2x (FINE paper Table 7: 44.4M -> 45.5M, box AP
# 37.9 -> 39.7, mask AP 34.6 -> 35.5; Sec. 5.4 / Table 5 analyse the 2x model).
# Only the neck changes.
_base_ = '../fpn/mask-rcnn_r50_fpn_2x_coco.py'
# FINEFPN's defaults are the paper's (spelled out in ./faster-rcnn_r50_fpn-fine_1x_coco.py)
model = dict(neck=dict(type='FINEFPN'))
