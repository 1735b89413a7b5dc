# The official YOLOv3-ASFF fusion modules (GOATmessi8/ASFF models/network_blocks.py, three
# modules level_{0,1,2}_fusion, level 0 = stride 32) as ASFFNeck configs. Their weights
# load with strict=True after tools/model_converters/asff2fusion.py:
#   asff_official:        class ASFF (YOLOv3-ASFF), Darknet-53 widths 512/256/256 in,
#                         1024/512/256 out (the 3x3 'expand' conv), compress 16;
#   asff_official_rfb:    the same with rfb=True (the ASFF* models): compress 8;
#   asff_official_mobile: class ASFFmobile (MobileNetV2-YOLOv3): 512/256/128 in, ReLU6.
# Differences from ASFFNeck's defaults (the paper's reading): the official level order and
# no 1x1 conv before upsampling a coarser source whose width already matches ('auto').
# The rest (full weight prediction, official max-pool + stride-2 resize, nearest
# upsampling, 3x3 expand, BN, LeakyReLU 0.1, the official init) are the defaults.
#   _base_ = ['<detector config>', '../_base_/necks/asff_official.py']
#   model = dict(neck=[<neck returning stride 32/16/8>, _base_.asff_official])
asff_official = dict(
    type='ASFFNeck',
    in_channels=[512, 256, 256],
    out_channels=[1024, 512, 256],
    input_order='coarse_to_fine',
    coarser_conv='auto',
    compress_c=16)
asff_official_rfb = dict(asff_official, compress_c=8)
asff_official_mobile = dict(
    asff_official, in_channels=[512, 256, 128], act_cfg=dict(type='ReLU6'))
