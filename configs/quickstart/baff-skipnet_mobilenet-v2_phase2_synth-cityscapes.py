# Quickstart, phase 2 of BAFF-SkipNet: SkipNet's phase 2 with each skip addition replaced
# by BAFF (8x8 blocks, 3D-conv weight sub-network; as in
# ../baff_skipnet/baff-skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py),
# trained from the same phase-1 checkpoint with the same recipe and seed.
_base_ = './skipnet_mobilenet-v2_phase2_synth-cityscapes.py'

model = dict(
    decode_head=dict(
        fusion='baff',
        baff_cfg=dict(block_size=8, weight_net='conv3d', mid_channels=2, kernel_size=3)))
