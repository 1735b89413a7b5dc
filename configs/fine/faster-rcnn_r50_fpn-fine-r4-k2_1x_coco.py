# Ablation (Fig. 5 grid): r=4, k=2 at both FINE steps.
# One key changed from faster-rcnn_r50_fpn-fine-k2_1x_coco.py (which is r=2, k=2).
_base_ = './faster-rcnn_r50_fpn-fine-k2_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(ratio=4)))
