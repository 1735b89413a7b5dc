# Ablation (Sec. 5.3.4): direct modulation F_low * M instead of the residual F_low * M +
# F_low.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(modulation='direct')))
