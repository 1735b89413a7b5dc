# Quickstart: YOLOv3 Darknet-53 (the baseline of the ASFF configs,
# ../asff/yolov3_d53_8xb8-ms-608-273e_coco.py) trained from scratch on the synthetic COCO
# set: only the data, the pipeline (one 320 px scale instead of the 320-608 multi-scale
# augmentation) and the schedule change (../_base_/synthetic_coco_quickstart.py), plus
# learned BN statistics (no pretrained weights offline, norm_eval=False).
# Baseline of ./yolov3_d53-asff_synth-coco.py.
#   python tools/demo.py --config configs/quickstart/yolov3_d53_synth-coco.py
_base_ = ['../asff/yolov3_d53_8xb8-ms-608-273e_coco.py', '../_base_/synthetic_coco_quickstart.py']
model = dict(
    backbone=dict(init_cfg=None, norm_eval=False),
    bbox_head=dict(num_classes=len(_base_.quickstart.classes)))
train_dataloader = _base_.quickstart.train_dataloader
val_dataloader = test_dataloader = _base_.quickstart.val_dataloader
val_evaluator = test_evaluator = _base_.quickstart.evaluator
train_cfg = _base_.quickstart.train_cfg
param_scheduler = _base_.quickstart.param_scheduler
default_hooks = _base_.quickstart.default_hooks
log_processor = _base_.quickstart.log_processor
randomness = _base_.quickstart.randomness
