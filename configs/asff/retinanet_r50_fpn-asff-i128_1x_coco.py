# Cheaper setting (one key): fuse at 128 channels (inter_channels=128); the expand conv maps
# back to the FPN's 256 channels, so the head is unchanged.
_base_ = './retinanet_r50_fpn-asff_1x_coco.py'
model = dict(neck=[_base_.model.neck[0], dict(_base_.model.neck[1], inter_channels=128)])
