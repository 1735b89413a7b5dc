# Baseline of the AutoFocusFormer point-Mask2Former quickstart: the Semantic FPN R-18
# quickstart with the recipe of mask2former-point_aff-mini_synth-cityscapes.py: batch 2,
# 150 iterations (10% linear warm-up, then poly); data, pipelines, optimiser and
# evaluation are unchanged.
#   python tools/train.py configs/quickstart/sem-fpn_r18_fpn_synth-cityscapes-b2.py
_base_ = './sem-fpn_r18_fpn_synth-cityscapes.py'
train_dataloader = dict(batch_size=2)
max_iters = 150
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=15, end=max_iters, by_epoch=False)
]
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
