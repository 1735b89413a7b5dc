# Ablation (Fig. 5, base kernel): k=1 at both FINE steps (r=2), instead of k=(1, 2).
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_kernel_sizes=(1, 1)))
