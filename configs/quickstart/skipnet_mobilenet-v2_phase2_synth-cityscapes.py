# Quickstart, phase 2 of SkipNet: the phase-1 quickstart model with its score head
# replaced by SkipNet's decoder (fusion by addition) -- the same decode_head as
# ../baff_skipnet/skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py, whose
# keys SkipNetWarmupHead shares -- trained end to end from the phase-1 checkpoint
# (encoder and the three score layers are loaded by name; the transposed convs start
# bilinear). Same data, optimiser and seed as phase 1; 400 iterations.
#   python tools/train.py configs/quickstart/skipnet_mobilenet-v2_phase1_synth-cityscapes.py
#   python tools/train.py configs/quickstart/skipnet_mobilenet-v2_phase2_synth-cityscapes.py
_base_ = './skipnet_mobilenet-v2_phase1_synth-cityscapes.py'

model = dict(decode_head=dict(type='SkipNetHead', fusion='add', fusion_space='score'))

# phase 2 is shorter: 400 iterations (8 epochs), the same optimiser, warm-up and decay
max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=1e-5)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
load_from = 'work_dirs/skipnet_mobilenet-v2_phase1_synth-cityscapes/iter_600.pth'
