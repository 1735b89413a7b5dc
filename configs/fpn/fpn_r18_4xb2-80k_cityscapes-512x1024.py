# Semantic FPN R-18 (ResNet-18-V1c), Cityscapes 512x1024, 80k iterations: the official R-50
# recipe with the smaller backbone that the synthetic quickstart trains on a CPU.
_base_ = './fpn_r50_4xb2-80k_cityscapes-512x1024.py'
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    neck=dict(in_channels=[64, 128, 256, 512]))
