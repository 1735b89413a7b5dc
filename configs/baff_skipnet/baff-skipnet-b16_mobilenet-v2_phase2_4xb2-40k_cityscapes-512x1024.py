# Ablation: BAFF block size 16x16 instead of 8x8.
_base_ = './baff-skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py'

model = dict(decode_head=dict(baff_cfg=dict(block_size=16)))
