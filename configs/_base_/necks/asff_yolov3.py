# The official YOLOv3-ASFF module (GOATmessi8/ASFF) on mmdet's YOLOV3Neck outputs, defined
# once for configs/asff/yolov3_d53-asff_*.py and its quickstart variant:
#   _base_ = ['<YOLOv3 config>', '../_base_/necks/asff_yolov3.py']
#   model = dict(neck=[_base_.model.neck, _base_.asff_neck])
# YOLOV3Neck returns stride 32/16/8 with 512/256/128 channels (coarse to fine, the official
# level order). The official 'expand' 3x3 conv (512->1024, 256->512, BN, LeakyReLU 0.1) is
# exactly the 3x3 'convs_bridge' that mmdet's YOLOV3Head already applies, so ASFF has no
# expand here (the official code also drops the baseline's 3x3 in front of each head).
# The other keys are those of the official module (./asff_official.py); the rest of
# ASFFNeck's defaults (compress 16, full weights, BN, LeakyReLU 0.1) are the official ones.
asff_neck = dict(
    type='ASFFNeck',
    in_channels=[512, 256, 128],
    out_channels=[512, 256, 128],
    input_order='coarse_to_fine',   # the official level order: level 0 = stride 32
    coarser_conv='auto',            # no 1x1 before upsampling where the widths match
    expand_kernel=None,
    level_names=['P5', 'P4', 'P3'])
