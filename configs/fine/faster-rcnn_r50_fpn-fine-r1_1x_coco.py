# Ablation (Fig. 5, sampling ratio): r=1 instead of r=2, k=(1, 2) kept.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(ratio=1)))
