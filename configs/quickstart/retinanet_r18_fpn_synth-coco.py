# Quickstart / demo: RetinaNet R-18 + FPN trained from scratch on the synthetic COCO
# set on a CPU. Same model as ../fpn/retinanet_r18_fpn_1x_coco.py; only the data,
# the pipeline size and the schedule change (plus what training from scratch needs:
# no pretrained weights offline, so BN statistics are learned, norm_eval=False).
#   python tools/dataset_converters/make_synthetic_coco.py data/synthetic_coco
#   python tools/train.py configs/quickstart/retinanet_r18_fpn_synth-coco.py
# Other necks: retinanet_r18_<neck>_synth-coco.py changes only `model.neck`.
_base_ = '../fpn/retinanet_r18_fpn-c128_1x_coco.py'

data_root = 'data/synthetic_coco/'
classes = ('circle', 'square', 'triangle', 'star', 'cross')
img_scale = (320, 320)

model = dict(
    backbone=dict(init_cfg=None, norm_eval=False),
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

max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-4)
]
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
