# Quickstart, phase 1 of BAFF-SkipNet: the same encoder warm-up as SkipNet's (BAFF only
# exists in phase 2). To compare the two, train phase 1 once (either config) and give its
# checkpoint to both phase-2 configs; their `load_from` points at the SkipNet phase-1
# work dir, so the commands in docs/baff_skipnet.md train phase 1 only once.
_base_ = './skipnet_mobilenet-v2_phase1_synth-cityscapes.py'
