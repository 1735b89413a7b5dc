# Faster R-CNN R-50 + FPN+FINE, COCO 1x (FINE paper Table 1: 42.8M, 39.1 AP).
# Only the neck changes: FPN -> FINEFPN, with the paper's defaults spelled out so that the
# ablation configs next to this one read as one-key changes.
_base_ = '../fpn/faster-rcnn_r50_fpn_1x_coco.py'
model = dict(
    neck=dict(
        type='FINEFPN',
        # k of each top-down step from the top: low stride 16 -> k=1, low stride 8 -> k=2,
        # plain addition at stride 4 (Sec. 5.3.2)
        fine_kernel_sizes=(1, 2),
        fine_cfg=dict(
            ratio=2,                 # r (Sec. 4.2, Fig. 5)
            head_dim=16,             # d = 16 -> 16 heads at C=256 (Table 4)
            attention='aats',        # Table 3
            pooling='avg',           # Down() of AATS (Table 6)
            modulation='residual',   # Eq. 9 (Sec. 5.3.4)
            upsample_mode='nearest')))   # Up() of Eq. 8
# Init (the paper states none): zeros_init defaults to a zero W_O with the residual
# modulation, so FINE starts as the identity; ./faster-rcnn_r50_fpn-fine-xavier_1x_coco.py
# starts W_O Xavier instead (docs/fine.md).
