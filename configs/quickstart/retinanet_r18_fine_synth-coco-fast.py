# Fast quickstart (./retinanet_r18_fpn_synth-coco-fast.py) with FPN -> FINEFPN, the
# paper's defaults (FINE at the stride-16 (k=1) and stride-8 (k=2) steps, r=2, d=16:
# 4 heads at this 64-channel FPN).   python tools/demo.py --neck fine
_base_ = './retinanet_r18_fpn_synth-coco-fast.py'
model = dict(neck=dict(type='FINEFPN'))
