# AutoFocusFormer-Small backbone (paper Table 1; layer scale 1e-5 comes with the 'small'
# arch) with the official ImageNet-1k checkpoint; drop path 0.3 as the official
# segmentation configs. Used as ./aff-tiny.py explains.
aff_small_backbone = dict(
    type='AutoFocusFormer',
    arch='small',
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://docs-assets.developer.apple.com/ml-research/models/'
                  'aff/classification/aff_small.pth'))
