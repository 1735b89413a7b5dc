# The synthetic-COCO quickstart recipe (data at 320 px, 1500 iterations) as ONE variable,
# for quickstart variants of real-data detector configs that bring their own model,
# optimizer and data preprocessor (FCOS, Faster R-CNN, YOLOv3 in configs/quickstart/).
# mmengine forbids the same key in two bases, so the pieces are taken one by one:
#   _base_ = ['<real-data config>', '../_base_/synthetic_coco_quickstart.py']
#   train_dataloader = _base_.quickstart.train_dataloader   (and so on)
# (`__` names are local to this file.) Same data, pipeline and schedule as the RetinaNet demo
# (configs/quickstart/retinanet_r18_fpn_synth-coco.py); the optimizer stays the real-data
# config's (the demo's RetinaNet trains with AdamW, lr 1e-3).
__data_root = 'data/synthetic_coco/'
__img_scale = (320, 320)
__train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=__img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
__test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=__img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
__classes = ('circle', 'square', 'triangle', 'star', 'cross')
__max_iters = 1500
quickstart = dict(
    classes=__classes,
    train_dataloader=dict(
        batch_size=8, num_workers=1, persistent_workers=False,
        dataset=dict(data_root=__data_root, metainfo=dict(classes=__classes),
                     pipeline=__train_pipeline)),
    val_dataloader=dict(
        batch_size=8, num_workers=1, persistent_workers=False,
        dataset=dict(data_root=__data_root, metainfo=dict(classes=__classes),
                     pipeline=__test_pipeline)),
    evaluator=dict(ann_file=__data_root + 'annotations/instances_val2017.json'),
    train_cfg=dict(_delete_=True, type='IterBasedTrainLoop', max_iters=__max_iters,
                   val_interval=__max_iters),
    param_scheduler=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=__max_iters, eta_min=1e-5)
    ],
    default_hooks=dict(
        logger=dict(interval=10),
        checkpoint=dict(by_epoch=False, interval=__max_iters, max_keep_ckpts=1)),
    log_processor=dict(by_epoch=False),
    randomness=dict(seed=0))
