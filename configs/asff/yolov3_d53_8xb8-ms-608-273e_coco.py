# Baseline for the ASFF configs: mmdet's YOLOv3 Darknet-53, multi-scale 608, unchanged.
_base_ = 'mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
