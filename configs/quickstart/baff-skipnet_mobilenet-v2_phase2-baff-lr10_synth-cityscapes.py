# ./baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py with the BAFF weight
# sub-networks at 10x the learning rate and without weight decay (everything else
# unchanged). Why: FusionStatsHook shows BAFF's block weights staying at ~0.5 (mean 0.47 /
# 0.50, std falling from 0.07 at init to 0.02 by iteration 400), i.e. phase 2 turns BAFF
# into a fixed half-half addition. The paper's phase 2 fine-tunes "the decoder and BAFF
# modules end-to-end" for 200 epochs (we train 8); a faster BAFF is the cheap stand-in
# for that longer schedule, and decoupled weight decay pulls the weight net towards
# sigmoid(0) = 0.5. Compared with tools/analysis/compare_necks.py.
_base_ = './baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py'
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'decode_head.fusions': dict(lr_mult=10.0, decay_mult=0.0)}))
