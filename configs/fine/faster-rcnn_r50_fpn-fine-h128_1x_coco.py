# Ablation (Table 4, heads): h=128 heads, i.e. head_dim d=256/128=2, instead of d=16 (h=16).
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(head_dim=2)))
