# Quickstart, phase 1 of SkipNet / BAFF-SkipNet (the encoder warm-up, shared by both):
# MobileNetV2 + SkipNet's deeply supervised score layers, trained from scratch on the
# synthetic Cityscapes set on a CPU, evaluated with IoUMetric and CityscapesMetric.
# Same model as ../baff_skipnet/skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024.py;
# only the data, the pipeline size (256x512 images) and the schedule (optimiser
# included) change.
#   python tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes
#   python tools/train.py configs/quickstart/skipnet_mobilenet-v2_phase1_synth-cityscapes.py
# then phase 2: skipnet_mobilenet-v2_phase2_synth-cityscapes.py (SkipNet) and
# baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py (BAFF-SkipNet) load this checkpoint.
_base_ = '../baff_skipnet/skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024.py'

data_root = 'data/synthetic_cityscapes/'
crop_size = (256, 256)
img_scale = (512, 256)

# from scratch: no ImageNet MobileNetV2 offline
model = dict(pretrained=None, data_preprocessor=dict(size=crop_size))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    # own folder: the sem-fpn quickstarts write theirs at the same time
    dict(type='CityscapesMetric', output_dir='work_dirs/format_results/skipnet_synth-cityscapes')
]
test_evaluator = val_evaluator

# Schedule for training from scratch on a CPU (the detector quickstart's recipe: AdamW
# 1e-3, linear warm-up, cosine decay; that quickstart found SGD far slower from scratch), kept short for
# a CPU: 600 iterations of batch 4 (12 epochs of the 200 training images).
max_iters = 600
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
