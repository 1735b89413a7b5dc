# Ablation (Sec. 5.3.4, "no modulation"): the upsampled attention output M replaces F_low.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(modulation='none')))
