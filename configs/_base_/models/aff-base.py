# AutoFocusFormer-Base backbone (paper Table 1) as the official segmentation configs use it:
# the ImageNet-22k -> 1k model at 384 px, with 24 tokens per cluster and neighbourhoods of
# 144 (instead of the 8 / 48 of the 224 px models) and drop path 0.3 (design notes,
# docs/autofocusformer.md). No config of this repository uses it yet and we give no
# checkpoint URL: set init_cfg=dict(type='Pretrained', checkpoint=...) to the official
# Base-384 checkpoint (converted on load). Used as ./aff-tiny.py explains.
aff_base_backbone = dict(
    type='AutoFocusFormer',
    arch='base',
    cluster_size=24,
    nbhd_size=144,
    drop_path_rate=0.3,
    init_cfg=None)
