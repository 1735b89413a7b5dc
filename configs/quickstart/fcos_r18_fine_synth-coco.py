# Quickstart: FCOS R-18 + FPN+FINE on the synthetic COCO set (CPU): the FPN quickstart
# (./fcos_r18_fpn_synth-coco.py) with only the neck changed, FPN -> FINEFPN with the
# paper's defaults (FINE at both top-down steps, low strides 16 and 8; every key spelled
# out in ../fine/faster-rcnn_r50_fpn-fine_1x_coco.py).
#   python tools/demo.py --config configs/quickstart/fcos_r18_fine_synth-coco.py
_base_ = './fcos_r18_fpn_synth-coco.py'
model = dict(neck=dict(type='FINEFPN'))
