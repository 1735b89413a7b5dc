# AutoFocusFormer-Tiny with the point-based Mask2Former head (paper Sec. 4.1, Table 4
# "Mask2Former*") for Cityscapes semantic segmentation, next to mmseg's Mask2Former R-50:
# the backbone returns its point tokens (out_dense=False), the pixel decoder runs
# point-based deformable attention / PointConv on them and the transformer decoder
# cross-attends to the tokens (docs/point_mask2former.md). alpha = 8 on Cityscapes (paper
# Table 4). Recipe of the official code (apple/ml-autofocusformer-segmentation): batch 32
# (8 x 4), AdamW lr 2e-4, wd 0.05, backbone lr x0.1, clip 0.01, 45k iterations, 512x1024
# crops; the rest (losses, 100 queries, 9+1 decoder layers, pipeline) is mmseg's.
# The backbone dict (arch, drop path 0.3, ImageNet checkpoint) is
# ../_base_/models/aff-tiny.py.
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
          '../_base_/cityscapes_metrics.py', '../_base_/models/aff-tiny.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
# IoUMetric + CityscapesMetric (cityscapesscripts) for val and test
val_evaluator = _base_.cityscapes_evaluator
test_evaluator = _base_.cityscapes_evaluator
checkpoint_file = _base_.aff_tiny_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=dict(_base_.aff_tiny_backbone, _delete_=True, alpha=8.0, out_dense=False),
    decode_head=dict(
        type='PointMask2FormerHead',
        in_channels=[64, 128, 256, 512],
        pixel_decoder=dict(
            type='PointMSDeformAttnPixelDecoder', norm_cfg=dict(_delete_=True, type='LN'))))

max_iters = 45000
train_dataloader = dict(batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=0.0002))
param_scheduler = [
    dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
