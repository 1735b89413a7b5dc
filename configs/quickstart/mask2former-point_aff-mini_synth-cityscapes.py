# Quickstart: AutoFocusFormer-Mini + point-based Mask2Former head trained from scratch on
# the synthetic Cityscapes set on a CPU, evaluated with mmseg's IoUMetric and
# cityscapesscripts (CityscapesMetric). Same model as
# ../autofocusformer/mask2former-point_aff-mini_8xb4-45k_cityscapes-512x1024.py (alpha 8);
# data, pipeline size (256x512 images, 256x256 crops) and evaluation are those of the
# Semantic FPN quickstart, with batch 2 and 150 iterations (10% warm-up, then poly) so that
# a run takes ~10 min on one CPU thread; its baseline with the same recipe (batch 2,
# 150 iterations) is sem-fpn_r18_fpn_synth-cityscapes-b2.py. Training from scratch, the backbone learns at the
# full rate (the x0.1 multiplier is for an ImageNet backbone); the mask loss samples
# 1568 points per mask, Mask2Former's 12544 scaled by the area of the stride-4 map
# (64x64 for 256x256 crops instead of 128x256 for 512x1024).
#   python tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes
#   python tools/train.py configs/quickstart/mask2former-point_aff-mini_synth-cityscapes.py
_base_ = ['../autofocusformer/mask2former-point_aff-mini_8xb4-45k_cityscapes-512x1024.py',
          '../_base_/synthetic_cityscapes_quickstart.py']

__data = _base_.synthetic_cityscapes
data_root = __data.data_root
crop_size = __data.crop_size
img_scale = __data.img_scale

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(train_cfg=dict(num_points=1568)))

train_pipeline = __data.train_pipeline
test_pipeline = __data.test_pipeline
train_dataloader = dict(__data.train_dataloader, batch_size=2)
val_dataloader = __data.val_dataloader
test_dataloader = val_dataloader
val_evaluator = [__data.iou_metric, __data.cityscapes_metric]
test_evaluator = val_evaluator

lr = 0.0002
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=1.0, decay_mult=1.0))))
max_iters = 150
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=lr * 0.01, power=0.9, begin=15, end=max_iters, by_epoch=False)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
