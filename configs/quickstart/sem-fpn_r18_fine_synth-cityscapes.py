# Quickstart: Semantic FPN R-18 + FPN+FINE on the synthetic Cityscapes set (CPU): the FPN
# quickstart (./sem-fpn_r18_fpn_synth-cityscapes.py) with only the neck changed, mmseg's
# FPN -> FINEFPN with the paper's defaults (FINE at the low-stride-16 and -8 steps, plain
# addition at stride 4; see ../fine/fpn-fine_r50_4xb2-80k_cityscapes-512x1024.py).
#   python tools/demo.py --task seg --neck fine      (make demo-seg NECK=fine)
_base_ = './sem-fpn_r18_fpn_synth-cityscapes.py'
model = dict(neck=dict(type='FINEFPN'))
