# Faster R-CNN + ASFF over P3-P5 only; P2 and P6 pass through unchanged.
_base_ = './faster-rcnn_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], fuse_levels=[1, 2, 3])])
