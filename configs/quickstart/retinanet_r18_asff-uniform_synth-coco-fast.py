# Capacity control for ./retinanet_r18_asff_synth-coco-fast.py: the same ASFF neck with
# its fusion weights fixed to 1/5 (`weight_mode='uniform'`, no weight branch), every
# resize and expand conv kept.   python tools/demo.py --neck asff-uniform
_base_ = './retinanet_r18_asff_synth-coco-fast.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], weight_mode='uniform')])
