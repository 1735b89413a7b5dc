# AutoFocusFormer-Mini with the 1/5 downsampling rate (arch 'mini_1_5th': 16384/3276/655/131
# tokens at 512x512) and its official ImageNet-1k checkpoint; drop path 0.0 as the official
# Mini configs. Used as ./aff-tiny.py explains.
aff_mini_1_5th_backbone = dict(
    type='AutoFocusFormer',
    arch='mini_1_5th',
    drop_path_rate=0.0,
    init_cfg=dict(type='Pretrained',
                  checkpoint='https://docs-assets.developer.apple.com/ml-research/models/'
                  'aff/classification/aff_mini_1_5th.pth'))
