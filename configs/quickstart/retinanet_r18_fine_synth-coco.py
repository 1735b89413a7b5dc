# Quickstart / demo: RetinaNet R-18 + FPN+FINE on the synthetic COCO set (CPU): the FPN
# quickstart (./retinanet_r18_fpn_synth-coco.py) with only the neck changed, FPN ->
# FINEFPN with the paper's defaults (FINE at the low-stride-16 (k=1) and -8 (k=2) steps,
# r=2, d=16: 8 heads at this 128-channel FPN; every key is spelled out in
# ../fine/faster-rcnn_r50_fpn-fine_1x_coco.py).
#   python tools/demo.py --neck fine      (make demo NECK=fine)
_base_ = './retinanet_r18_fpn_synth-coco.py'
model = dict(neck=dict(type='FINEFPN'))
