# Baseline for the ASFF configs: mmdet's Faster R-CNN R50-FPN 1x, unchanged.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
