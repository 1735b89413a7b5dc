# Cheaper setting (one key): every level fuses only its neighbours (fuse_range=1), so P3
# fuses P3-P4 and P7 fuses P6-P7 instead of all five levels.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], fuse_range=1)])
