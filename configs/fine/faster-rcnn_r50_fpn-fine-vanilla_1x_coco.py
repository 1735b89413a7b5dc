# Ablation (Table 3, attention strategy): dense pixel-to-pixel ("vanilla") cross-level
# attention on all pixels instead of AATS.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(attention='vanilla')))
