# Faster R-CNN R-50 + FPN, COCO 1x: the official mmdet config, unchanged (baseline of
# ../fine/faster-rcnn_r50_fpn-fine_1x_coco.py (FINE paper Table 1: 41.8M, 37.0 AP) and
# ../asff/faster-rcnn_r50_fpn-asff*_1x_coco.py).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
