# ./retinanet_r18_fine_synth-coco-fast.py with the FINE layers at a tenth of the learning
# rate (everything else, FPN included, unchanged). Why: with AdamW every parameter takes
# steps of about the same size, so FINE's zero-initialised W_O leaves the identity fast;
# FusionStatsHook shows the mean |M| at 10.5 (stride 16) / 2.3 (stride 8) by iteration 900,
# i.e. the modulation rescales the laterals by up to ~10x. The paper trains with SGD
# (mmdet's 1x recipe), where a zero-initialised projection grows with its gradient.
# This config tests whether a slower FINE separates from FPN (compare_necks.py).
#   python tools/demo.py --neck fine-lr0.1
_base_ = './retinanet_r18_fine_synth-coco-fast.py'
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'neck.fine_layers': dict(lr_mult=0.1)}))
