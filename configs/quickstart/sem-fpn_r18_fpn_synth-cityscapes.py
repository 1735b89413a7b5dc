# Quickstart: Semantic FPN R-18 trained from scratch on the synthetic Cityscapes set on a
# CPU, evaluated with mmseg's IoUMetric and cityscapesscripts (CityscapesMetric).
# Same model as ../fpn/fpn_r18_4xb2-80k_cityscapes-512x1024.py; only the data, the
# pipeline size (256x512 images) and the schedule change.
#   python tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes
#   python tools/train.py configs/quickstart/sem-fpn_r18_fpn_synth-cityscapes.py
_base_ = ['../fpn/fpn_r18_4xb2-80k_cityscapes-512x1024.py',
          '../_base_/synthetic_cityscapes_quickstart.py']

__data = _base_.synthetic_cityscapes
data_root = __data.data_root
crop_size = __data.crop_size
img_scale = __data.img_scale

model = dict(pretrained=None, data_preprocessor=dict(size=crop_size))

train_pipeline = __data.train_pipeline
test_pipeline = __data.test_pipeline
train_dataloader = __data.train_dataloader
val_dataloader = __data.val_dataloader
test_dataloader = val_dataloader
val_evaluator = [__data.iou_metric, __data.cityscapes_metric]
test_evaluator = val_evaluator

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=40, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
