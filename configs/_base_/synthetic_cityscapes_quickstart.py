# The synthetic-Cityscapes quickstart data (256x512 images, 256x256 crops, IoUMetric +
# CityscapesMetric) as ONE variable, for the quickstart versions of real-data mmseg configs
# (Semantic FPN, SkipNet, point Mask2Former in configs/quickstart/). mmengine forbids the
# same key in two bases, so the pieces are taken one by one:
#   _base_ = ['<real-data config>', '../_base_/synthetic_cityscapes_quickstart.py']
#   train_dataloader = _base_.synthetic_cityscapes.train_dataloader   (and so on)
# (`__` names are local to this file.)
#   python tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes
__data_root = 'data/synthetic_cityscapes/'
__crop_size = (256, 256)
__img_scale = (512, 256)
__train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=__img_scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=__crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
__test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=__img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
synthetic_cityscapes = dict(
    data_root=__data_root,
    crop_size=__crop_size,
    img_scale=__img_scale,
    train_pipeline=__train_pipeline,
    test_pipeline=__test_pipeline,
    train_dataloader=dict(
        batch_size=4, num_workers=1, persistent_workers=False,
        dataset=dict(data_root=__data_root, pipeline=__train_pipeline)),
    val_dataloader=dict(
        batch_size=1, num_workers=1, persistent_workers=False,
        dataset=dict(data_root=__data_root, pipeline=__test_pipeline)),
    # one CityscapesMetric output folder per config family: runs may overlap in time
    iou_metric=dict(type='IoUMetric', iou_metrics=['mIoU']),
    cityscapes_metric=dict(type='CityscapesMetric',
                           output_dir='work_dirs/format_results/synthetic_cityscapes'))
