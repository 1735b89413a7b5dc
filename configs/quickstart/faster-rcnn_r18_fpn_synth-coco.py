# Quickstart: Faster R-CNN R-18 + FPN trained from scratch on the synthetic COCO set (CPU).
# The official Faster R-CNN R-50 FPN 1x config (../fpn/faster-rcnn_r50_fpn_1x_coco.py) on
# a ResNet-18 (mmdet ships no Faster R-CNN R-18 config; the same switch as mmdet's
# retinanet_r18_fpn_1x_coco.py), with the data, pipeline size and schedule of the RetinaNet
# quickstart (../_base_/synthetic_coco_quickstart.py), plus what training from scratch
# needs (no pretrained weights offline, so BN statistics are learned, norm_eval=False).
# Baseline of ./faster-rcnn_r18_fine_synth-coco.py. Slow on a CPU (mmcv's CPU RoIAlign):
# for trying the model end to end, not for the quickstart comparison.
#   python tools/demo.py --config configs/quickstart/faster-rcnn_r18_fpn_synth-coco.py
_base_ = ['../fpn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/synthetic_coco_quickstart.py']

model = dict(
    backbone=dict(depth=18, init_cfg=None, norm_eval=False),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=len(_base_.quickstart.classes))))

train_dataloader = _base_.quickstart.train_dataloader
val_dataloader = _base_.quickstart.val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.quickstart.evaluator
test_evaluator = val_evaluator
train_cfg = _base_.quickstart.train_cfg
param_scheduler = _base_.quickstart.param_scheduler
default_hooks = _base_.quickstart.default_hooks
log_processor = _base_.quickstart.log_processor
randomness = _base_.quickstart.randomness
# the official lr 0.02 at batch 16, linearly scaled to the quickstart's batch 8
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(base_batch_size=8)
