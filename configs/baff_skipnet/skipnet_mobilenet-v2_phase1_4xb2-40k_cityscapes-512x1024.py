# Phase 1 of the BAFF article's two-phase schedule: warm up the MobileNetV2 encoder so
# that its 1/8, 1/16 and 1/32 features are meaningful. Deep supervision: one linear
# (1x1) score layer per level (mmseg's FCNHead with num_convs=0), each with its own
# cross-entropy loss. Phase 2 (`*_phase2_*`) loads this checkpoint with `load_from`.
# Diff from the official MobileNetV2 FCN config: non-dilated backbone (output stride 32,
# levels 1/8, 1/16, 1/32), the three score heads, 40k of the 80k iterations.
_base_ = 'mmseg::mobilenet_v2/mobilenet-v2-d8_fcn_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['fusion_necks'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
score_head = dict(
    type='FCNHead',
    num_convs=0,
    concat_input=False,
    dropout_ratio=0,
    num_classes=19,
    norm_cfg=norm_cfg,
    align_corners=False,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0))
model = dict(
    backbone=dict(
        strides=(1, 2, 2, 2, 1, 2, 1),
        dilations=(1, 1, 1, 1, 1, 1, 1),
        out_indices=(2, 4, 6)),  # 1/8 (32 ch), 1/16 (96 ch), 1/32 (320 ch)
    decode_head=dict(
        _delete_=True, in_channels=320, channels=320, in_index=2, **score_head),
    auxiliary_head=[
        dict(in_channels=96, channels=96, in_index=1, **score_head),
        dict(in_channels=32, channels=32, in_index=0, **score_head),
    ])

train_cfg = dict(max_iters=40000, val_interval=4000)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=40000, by_epoch=False)
]
