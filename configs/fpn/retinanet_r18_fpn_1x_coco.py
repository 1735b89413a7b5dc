# RetinaNet R-18 + FPN, COCO 1x (official mmdet config, unchanged): the baseline that
# the quickstart demo trains on synthetic data and that FINE/ASFF variants change.
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
