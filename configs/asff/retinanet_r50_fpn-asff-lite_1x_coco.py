# The cheapest ASFF we offer on RetinaNet: P3-P5 only (P6/P7 pass through), neighbours only
# (fuse_range=1) and a 1x1 expand conv (docs/asff.md: parameters, FLOPs and latency).
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[
    _base_.model.neck[0],
    dict(_base_.model.neck[1], fuse_levels=[0, 1, 2], fuse_range=1, expand_kernel=1),
])
