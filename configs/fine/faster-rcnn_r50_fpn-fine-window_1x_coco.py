# Ablation (Table 3, attention strategy): 7x7 window attention on all pixels (Swin-style;
# window_size=7) instead of AATS.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(attention='window')))
