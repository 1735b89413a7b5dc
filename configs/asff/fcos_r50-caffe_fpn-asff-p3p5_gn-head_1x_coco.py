# FCOS + ASFF over P3-P5 only; P6/P7 pass through unchanged.
_base_ = './fcos_r50-caffe_fpn-asff_gn-head_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], fuse_levels=[0, 1, 2])])
