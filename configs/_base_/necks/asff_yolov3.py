# The official YOLOv3-ASFF module (GOATmessi8/ASFF) on mmdet's YOLOV3Neck outputs, defined
# once for configs/asff/yolov3_d53-asff_*.py and its quickstart variant:
#   _base_ = ['<YOLOv3 config>', '../_base_/necks/asff_yolov3.py']
#   model = dict(neck=[_base_.model.neck, _base_.asff_neck])
# YOLOV3Neck returns stride 32/16/8 with 512/256/128 channels (coarse to fine, the official
# level order). The official 'expand' 3x3 conv (512->1024, 256->512, BN, LeakyReLU 0.1) is
# exactly the 3x3 'convs_bridge' that mmdet's YOLOV3Head already applies, so ASFF has no
# expand here (the official code also drops the baseline's 3x3 in front of each head).
asff_neck = dict(
    type='ASFFNeck',
    preset='official',
    in_channels=[512, 256, 128],
    out_channels=[512, 256, 128],
    expand_kernel=None,
    level_names=['P5', 'P4', 'P3'])
