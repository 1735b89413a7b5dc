# FCOS R-50 (caffe) + FPN, GN head, COCO 1x: the official mmdet config, unchanged (baseline
# of ../fine/fcos_r50-caffe_fpn-fine_gn-head_1x_coco.py and
# ../asff/fcos_r50-caffe_fpn-asff*_gn-head_1x_coco.py). mmdet has no plain pytorch-style
# FCOS R-50 1x config; this is its FCOS R-50 1x.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
