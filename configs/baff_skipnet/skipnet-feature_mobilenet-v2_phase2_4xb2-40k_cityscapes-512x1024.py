# Baseline for the feature-space ablation: SkipNet (addition) fusing 64-channel features
# instead of class scores, same decoder as `baff-skipnet-feature_*` without BAFF.
_base_ = './skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py'

model = dict(decode_head=dict(fusion_space='feature', channels=64))
