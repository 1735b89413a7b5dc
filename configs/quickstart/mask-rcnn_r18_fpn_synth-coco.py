# Quickstart: Mask R-CNN R-18 + FPN trained from scratch on the synthetic COCO set (CPU,
# masks from its polygons). The Faster R-CNN quickstart (./faster-rcnn_r18_fpn_synth-coco.py)
# plus exactly what mmdet's model base mask-rcnn_r50_fpn.py adds to faster-rcnn_r50_fpn.py
# (the mask branch, pad_mask, match_low_quality, mask_size, mask_thr_binary), and the
# masks in the pipeline and the metric. Baseline of ./mask-rcnn_r18_fine_synth-coco.py.
# Slow on a CPU (mmcv's CPU RoIAlign): for trying the model end to end.
#   python tools/demo.py --config configs/quickstart/mask-rcnn_r18_fpn_synth-coco.py
_base_ = './faster-rcnn_r18_fpn_synth-coco.py'

model = dict(
    type='MaskRCNN',
    data_preprocessor=dict(pad_mask=True),
    roi_head=dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=len(_base_.quickstart.classes),
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True), mask_size=28)),
    test_cfg=dict(rcnn=dict(mask_thr_binary=0.5)))

# the quickstart pipelines, with masks loaded
train_pipeline = [dict(t, with_mask=True) if t['type'] == 'LoadAnnotations' else t
                  for t in _base_.train_dataloader.dataset.pipeline]
test_pipeline = [dict(t, with_mask=True) if t['type'] == 'LoadAnnotations' else t
                 for t in _base_.val_dataloader.dataset.pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
