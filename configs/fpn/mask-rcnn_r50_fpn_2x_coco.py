# Mask R-CNN R-50 + FPN, COCO 2x: the official mmdet config, unchanged (baseline of
# ../fine/mask-rcnn_r50_fpn-fine_2x_coco.py).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_2x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
