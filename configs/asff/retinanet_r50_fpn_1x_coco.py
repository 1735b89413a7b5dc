# Baseline for the ASFF configs: mmdet's RetinaNet R50-FPN 1x, unchanged.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
