# Not an ablation of the paper: the reading of the authors' public code (HyungseopLee/
# FINE-FPN) where it differs from the paper and we implement it: linear (SimA-style)
# attention on the AATS tokens, a plain multiply F_low * M, bilinear Up(), nn.Linear
# projections with bias. (Its position embedding, LayerNorms and FFN are not implemented;
# see docs/fine.md.)
_base_ = './faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(
    neck=dict(
        fine_cfg=dict(attention='aats_linear', modulation='direct',
                      upsample_mode='bilinear', bias=True)))
