# AutoFocusFormer-Tiny with the point-based Mask2Former head on ADE20K 512x512 (paper
# Table 3: 50.2 mIoU, 64.6G FLOPs), next to mmseg's Mask2Former R-50: the backbone returns
# its point tokens, the pixel decoder and the transformer decoder work on them
# (docs/point_mask2former.md). alpha = 4 (the paper's default). Recipe of the official
# code (apple/ml-autofocusformer-segmentation): batch 32 (8 x 4), AdamW lr 2e-4,
# wd 0.05, backbone lr x0.1, clip 0.01, 80k iterations; the rest is mmseg's.
# The backbone dict (arch, drop path 0.3, ImageNet checkpoint) is
# ../_base_/models/aff-tiny.py.
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
          '../_base_/models/aff-tiny.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = _base_.aff_tiny_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=dict(_base_.aff_tiny_backbone, _delete_=True, alpha=4.0, out_dense=False),
    decode_head=dict(
        type='PointMask2FormerHead',
        in_channels=[64, 128, 256, 512],
        pixel_decoder=dict(
            type='PointMSDeformAttnPixelDecoder', norm_cfg=dict(_delete_=True, type='LN'))))

max_iters = 80000
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=0.0002))
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
