# Phase 1 of the BAFF article's two-phase schedule: warm up the MobileNetV2 encoder so
# that its 1/8, 1/16 and 1/32 features are meaningful. Deep supervision: SkipNet's three
# linear (1x1) score layers, each with its own cross-entropy loss, no fusion
# (SkipNetWarmupHead). The score layers carry the parameter names of SkipNetHead, so
# phase 2 (`*_phase2_*`, `load_from` = this checkpoint) starts from the phase-1 encoder
# AND the phase-1 score layers at 1/8, 1/16 and 1/32.
# Diff from the official MobileNetV2 FCN config: non-dilated backbone (output stride 32,
# levels 1/8, 1/16, 1/32), the score head instead of FCN + auxiliary FCN, 40k of the 80k
# iterations.
_base_ = ['mmseg::mobilenet_v2/mobilenet-v2-d8_fcn_4xb2-80k_cityscapes-512x1024.py',
          '../_base_/cityscapes_metrics.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
# IoUMetric + CityscapesMetric (cityscapesscripts) for val and test
val_evaluator = _base_.cityscapes_evaluator
test_evaluator = _base_.cityscapes_evaluator

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        strides=(1, 2, 2, 2, 1, 2, 1),
        dilations=(1, 1, 1, 1, 1, 1, 1),
        out_indices=(2, 4, 6)),  # 1/8 (32 ch), 1/16 (96 ch), 1/32 (320 ch)
    decode_head=dict(
        _delete_=True,
        type='SkipNetWarmupHead',
        in_channels=(32, 96, 320),
        in_index=(0, 1, 2),
        channels=320,  # conv_seg is the 1/32 score layer, as in SkipNetHead
        dropout_ratio=0,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        # applied to each level (1 each): decode.loss_ce_lvl{0,1,2}
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)
]
