# The ASFF neck that follows a 5-level FPN (RetinaNet/FCOS: P3-P7, Faster R-CNN: P2-P6),
# defined once for every FPN + ASFF config in configs/asff/ and configs/quickstart/:
#   _base_ = ['<the baseline config>', '../_base_/necks/asff.py']
#   model = dict(neck=[_base_.model.neck, _base_.asff_neck])
# A config that needs another value changes one key: dict(_base_.asff_neck, key=value).
# GN instead of the official BN: 2 images per GPU (docs/asff.md; BN is the -bn ablation).
asff_neck = dict(
    type='ASFFNeck',
    in_channels=256,
    num_levels=5,
    compress_c=16,
    weight_mode='full',
    norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
    level_names=['P3', 'P4', 'P5', 'P6', 'P7'])
