# Initialisation (not an ablation of the paper, which states no init): W_O Xavier-uniform
# like W_Q, W_K, W_V (nn.MultiheadAttention's init) instead of the default zero W_O, so
# FINE does not start as the identity. docs/fine.md has the quickstart comparison.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(zeros_init=False)))
