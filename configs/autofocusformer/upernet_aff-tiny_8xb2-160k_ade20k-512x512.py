# AutoFocusFormer-Tiny as a drop-in backbone of UPerNet on ADE20K (512x512), next to
# mmseg's Swin-T UPerNet. AFF's point tokens are rasterised onto dense stride 4/8/16/32
# maps (inverse-distance interpolation, out_dense=True), so the head is unchanged. The
# paper pairs AFF with a point-based Mask2Former instead; this config is for
# comparing backbones under a standard dense head. drop_path 0.3 as the official ADE
# configs; the official ImageNet checkpoint is converted on load (or offline with
# tools/model_converters/aff2fusion.py; fusion_necks.compat resolves the URL to
# ./checkpoints/aff_tiny.pth or trains from scratch with a warning). The backbone dict is
# ../_base_/models/aff-tiny.py.
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
          '../_base_/models/aff-tiny.py']
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
checkpoint_file = _base_.aff_tiny_backbone.init_cfg.checkpoint  # the ImageNet weights
model = dict(
    backbone=dict(_base_.aff_tiny_backbone, _delete_=True),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
