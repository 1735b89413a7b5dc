# Phase 2, SkipNet: MobileNetV2 + SkipNet's FCN-8s decoder (class scores at 1/32, 1/16,
# 1/8, x2 bilinear-initialised transposed convs, fusion by addition), trained end to end
# from the phase-1 checkpoint: `load_from` loads by parameter name, so the encoder and the
# three score layers (`decode_head.conv_seg`, `decode_head.score_convs.{0,1}`) come from
# phase 1; the transposed convs (bilinear init) start fresh.
_base_ = './skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='SkipNetHead',
        in_channels=(32, 96, 320),
        in_index=(0, 1, 2),
        channels=320,  # score space: conv_seg is the 1/32 score layer
        fusion='add',
        fusion_space='score',
        dropout_ratio=0,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=None)

load_from = 'work_dirs/skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024/iter_40000.pth'
