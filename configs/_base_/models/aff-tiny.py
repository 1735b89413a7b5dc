# AutoFocusFormer-Tiny backbone (paper Table 1) with the official ImageNet-1k checkpoint
# and the drop path of the official segmentation configs (0.3), defined once for every
# AFF-Tiny config in configs/autofocusformer/. A base config of mmdet/mmseg already
# defines `model` (mmengine refuses the same key in two bases), so this is a variable:
#   _base_ = ['<the mmdet/mmseg config>', '../_base_/models/aff-tiny.py']
#   model = dict(backbone=dict(_base_.aff_tiny_backbone, _delete_=True, <task keys>))
# and a config that derives from an AFF config swaps the size with
#   model = dict(backbone=_base_.aff_<size>_backbone).
aff_tiny_backbone = dict(
    type='AutoFocusFormer',
    arch='tiny',
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://docs-assets.developer.apple.com/ml-research/models/'
                  'aff/classification/aff_tiny.pth'))
