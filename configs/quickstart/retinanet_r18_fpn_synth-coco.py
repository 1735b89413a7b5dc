# Quickstart / demo: RetinaNet R-18 + FPN trained from scratch on the synthetic COCO
# set on a CPU. Same model as ../fpn/retinanet_r18_fpn_1x_coco.py; only the data,
# the pipeline size and the schedule change (plus what training from scratch needs: no
# pretrained weights offline, so every stage trains and BN statistics are learned).
#   python tools/dataset_converters/make_synthetic_coco.py data/synthetic_coco
#   python tools/train.py configs/quickstart/retinanet_r18_fpn_synth-coco.py
# Other necks: retinanet_r18_<neck>_synth-coco.py changes only `model.neck`.
_base_ = '../fpn/retinanet_r18_fpn-c128_1x_coco.py'

data_root = 'data/synthetic_coco/'
classes = ('circle', 'square', 'triangle', 'star', 'cross')
img_scale = (320, 320)

model = dict(
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    bbox_head=dict(num_classes=len(classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# Schedule for training from scratch on a CPU: AdamW (SGD at lr 0.02 learns far slower
# from scratch; AdamW at 2e-3 diverges), linear warm-up, cosine decay, 1500 iterations of
# batch 8 (12 epochs of the 1000 training images). Measured curve of this recipe's FPN
# model (bbox mAP on the 200 val images): 0.02 / 0.12 / 0.23 / 0.25 after 250 / 500 /
# 750 / 1000 iterations of a 1000-iteration run.
max_iters = 1500
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.001, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
