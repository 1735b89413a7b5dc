# Quickstart: FCOS R-18 + FPN trained from scratch on the synthetic COCO set (CPU): the
# RetinaNet quickstart (./retinanet_r18_fpn_synth-coco.py: R-18, 128-channel FPN and head,
# same data and schedule) with RetinaNet's anchor head replaced by the head and FPN
# extra levels of mmdet's fcos_r50-caffe_fpn_gn-head_1x_coco.py (P6/P7 from P5 with ReLU,
# FCOSHead with GN, focal + IoU + centerness losses; no anchor assigner).
# Baseline of ./fcos_r18_fine_synth-coco.py.
#   python tools/demo.py --config configs/quickstart/fcos_r18_fpn_synth-coco.py
_base_ = './retinanet_r18_fpn_synth-coco.py'

model = dict(
    type='FCOS',
    neck=dict(add_extra_convs='on_output', relu_before_extra_convs=True),
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=len(_base_.classes),
        in_channels=_base_.model.neck.out_channels,
        stacked_convs=4,
        feat_channels=_base_.model.neck.out_channels,
        strides=[8, 16, 32, 64, 128],
        loss_cls=dict(
            type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=None)
