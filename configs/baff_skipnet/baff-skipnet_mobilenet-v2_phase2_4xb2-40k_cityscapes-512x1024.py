# Phase 2, BAFF-SkipNet: SkipNet's decoder with each skip addition replaced by Block
# Adaptive Feature Fusion (8x8 blocks, the article's 3D-conv weight sub-network), decoder
# and BAFF trained end to end from the phase-1 checkpoint (encoder and score layers from
# phase 1; BAFF and the transposed convs start fresh).
_base_ = './skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py'

model = dict(
    decode_head=dict(
        fusion='baff',
        baff_cfg=dict(block_size=8, weight_net='conv3d', mid_channels=2, kernel_size=3)))

load_from = ('work_dirs/baff-skipnet_mobilenet-v2_phase1_4xb2-40k_cityscapes-512x1024/'
             'iter_40000.pth')
