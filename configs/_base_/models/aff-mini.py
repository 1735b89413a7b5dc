# AutoFocusFormer-Mini backbone (paper Table 1) with the official ImageNet-1k checkpoint;
# drop path 0.0 as the official Mini configs. Used as ./aff-tiny.py explains:
#   model = dict(backbone=_base_.aff_mini_backbone)   (in a config derived from a Tiny one)
aff_mini_backbone = dict(
    type='AutoFocusFormer',
    arch='mini',
    drop_path_rate=0.0,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://docs-assets.developer.apple.com/ml-research/models/'
                  'aff/classification/aff_mini.pth'))
