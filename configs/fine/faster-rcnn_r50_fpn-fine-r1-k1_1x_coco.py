# Ablation (Fig. 5 grid): r=1, k=1 at both FINE steps.
# One key changed from faster-rcnn_r50_fpn-fine-k1_1x_coco.py (which is r=2, k=1).
_base_ = './faster-rcnn_r50_fpn-fine-k1_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(ratio=1)))
