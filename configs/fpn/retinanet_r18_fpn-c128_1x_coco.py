# RetinaNet R-18 + FPN with 128 channels in the FPN and the head, COCO 1x: the official
# R-18 recipe at half the width after the backbone, which cuts the model's cost at a
# given resolution by ~2.5x (the 256-channel head is ~75% of RetinaNet R-18's FLOPs).
# This is the detector of the CPU quickstart (../quickstart/retinanet_r18_fpn_synth-coco.py).
_base_ = './retinanet_r18_fpn_1x_coco.py'
model = dict(
    neck=dict(out_channels=128),
    bbox_head=dict(in_channels=128, feat_channels=128))
