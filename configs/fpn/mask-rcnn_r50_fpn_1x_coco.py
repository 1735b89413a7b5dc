# Mask R-CNN R-50 + FPN, COCO 1x: the official mmdet config, unchanged (baseline of
# ../fine/mask-rcnn_r50_fpn-fine_1x_coco.py).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
