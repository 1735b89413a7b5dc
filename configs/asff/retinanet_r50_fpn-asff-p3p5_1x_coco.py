# Ablation (one key): ASFF over P3-P5 only; P6/P7 pass through unchanged.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], fuse_levels=[0, 1, 2])])
