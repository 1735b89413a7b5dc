# Capacity control for the ASFF quickstart (./retinanet_r18_asff_synth-coco.py): the same
# ASFF neck with its fusion weights fixed to 1/5 (`weight_mode='uniform'`, no weight
# branch), so that every resize and expand conv ASFF adds is still there. FPN vs this
# control vs ASFF tells the extra convs from the adaptive weights
# (tools/analysis/compare_necks.py; README "ASFF").
_base_ = './retinanet_r18_asff_synth-coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], weight_mode='uniform')])
