# Ablation (one key): compress_c 8 (the official rfb setting) instead of 16.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], compress_c=8)])
