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
_base_ = ['../baff_skipnet/skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024.py',
          '../_base_/synthetic_cityscapes_quickstart.py']

__data = _base_.synthetic_cityscapes
data_root = __data.data_root
crop_size = __data.crop_size
img_scale = __data.img_scale

# from scratch: no ImageNet MobileNetV2 offline
model = dict(pretrained=None, data_preprocessor=dict(size=crop_size))

train_pipeline = __data.train_pipeline
test_pipeline = __data.test_pipeline
train_dataloader = __data.train_dataloader
val_dataloader = __data.val_dataloader
test_dataloader = val_dataloader
# own CityscapesMetric folder: the sem-fpn quickstarts may write theirs at the same time
val_evaluator = [__data.iou_metric,
                 dict(__data.cityscapes_metric, output_dir='work_dirs/format_results/skipnet_synth-cityscapes')]
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
