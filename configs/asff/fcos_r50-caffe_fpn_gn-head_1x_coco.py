# Baseline for the ASFF configs: mmdet's FCOS R50 (caffe) FPN, GN head, 1x, unchanged.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
