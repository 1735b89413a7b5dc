# Ablation: fuse 64-channel features (1x1 ConvModule per level, depthwise bilinear x2
# transposed convs, BAFF on 64 channels, classifier at 1/8) instead of class scores.
# `channels` is the feature width in feature space (it must be 320 in score space).
_base_ = './baff-skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py'

model = dict(decode_head=dict(fusion_space='feature', channels=64))
