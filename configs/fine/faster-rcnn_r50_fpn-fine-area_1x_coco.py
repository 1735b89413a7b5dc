# Ablation (Table 3, attention strategy): area attention with 4 areas on all pixels
# (YOLOv12-style; num_areas=4) instead of AATS.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(attention='area')))
