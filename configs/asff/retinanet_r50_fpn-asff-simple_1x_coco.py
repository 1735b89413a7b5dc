# Ablation (one key): 'simple' weight prediction, one 1x1 conv C -> 1 per source.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], weight_mode='simple')])
