# YOLOv3 Darknet-53 + ASFF, the official YOLOv3-ASFF module on mmdet's YOLOV3Neck outputs.
# YOLOV3Neck returns stride 32/16/8 with 512/256/128 channels (coarse to fine, the official
# level order). The official 'expand' 3x3 conv (512->1024, 256->512, BN, LeakyReLU 0.1) is
# exactly the 3x3 'convs_bridge' that mmdet's YOLOV3Head already applies, so ASFF has no
# expand here (the official code also drops the baseline's 3x3 in front of each head).
_base_ = './yolov3_d53_8xb8-ms-608-273e_coco.py'
model = dict(
    neck=[
        _base_.model.neck,
        dict(
            type='ASFFNeck',
            preset='official',
            in_channels=[512, 256, 128],
            out_channels=[512, 256, 128],
            expand_kernel=None,
            level_names=['P5', 'P4', 'P3']),
    ])
custom_imports = dict(imports=['fusion_necks'], allow_failed_imports=False)
