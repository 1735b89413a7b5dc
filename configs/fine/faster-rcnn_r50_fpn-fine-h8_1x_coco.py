# Ablation (Table 4, heads): h=8 heads, i.e. head_dim d=256/8=32, instead of d=16 (h=16).
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(head_dim=32)))
