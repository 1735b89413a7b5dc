# Ablation (Table 6 / Appendix B, AATS downsampling): max pooling instead of average
# pooling.
# One key changed from faster-rcnn_r50_fpn-fine_1x_coco.py.
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(neck=dict(fine_cfg=dict(pooling='max')))
