# Cheaper setting (one key): a 1x1 expand conv instead of the official 3x3 (expand_kernel=1);
# the 3x3 expand at P3 is most of ASFF's FLOPs.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], expand_kernel=1)])
