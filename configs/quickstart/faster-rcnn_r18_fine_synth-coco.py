# Quickstart: Faster R-CNN R-18 + FPN+FINE on the synthetic COCO set (CPU): the FPN
# quickstart (./faster-rcnn_r18_fpn_synth-coco.py) with only the neck changed, FPN ->
# FINEFPN with the paper's defaults (every key spelled out in
# ../fine/faster-rcnn_r50_fpn-fine_1x_coco.py). Slow on a CPU (mmcv's CPU RoIAlign).
#   python tools/demo.py --config configs/quickstart/faster-rcnn_r18_fine_synth-coco.py
_base_ = './faster-rcnn_r18_fpn_synth-coco.py'
model = dict(neck=dict(type='FINEFPN'))
