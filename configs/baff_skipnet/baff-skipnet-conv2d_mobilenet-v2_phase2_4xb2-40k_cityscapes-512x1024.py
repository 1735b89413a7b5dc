# Ablation: BAFF weight sub-network with a 2D conv over concat(S, D) (a learned reduction
# over the 2C channels) instead of the article's compact 3D conv over the stacked volume.
_base_ = './baff-skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py'

model = dict(decode_head=dict(baff_cfg=dict(weight_net='conv2d')))
