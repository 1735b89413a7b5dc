"""configs/fine: every config parses and builds; FINE configs differ from their baseline
(the official configs in configs/fpn/) only in the neck, ablations from their parent in
exactly one key; parameter counts of the five models against the FINE paper's Tables 1
and 7 (differences explained in docs/fine.md)."""
import glob
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(ROOT, 'configs', 'fine')
FPN_DIR = osp.join(ROOT, 'configs', 'fpn')   # the official baselines, shared with ASFF
CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(CFG_DIR, '*.py')))
MAIN = 'faster-rcnn_r50_fpn-fine_1x_coco.py'

C = 256
FINE_BLOCK = 4 * C * C          # W_Q, W_K, W_V, W_O (Eq. 5, 7), no bias
FINE_DEFAULT = 2 * FINE_BLOCK   # FINE at the low-stride-16 and -8 steps

# FINE config -> (baseline config, paper #params baseline, paper #params with FINE) [M]
MODELS = {
    MAIN: ('faster-rcnn_r50_fpn_1x_coco.py', 41.8, 42.8),                       # Table 1
    'retinanet_r50_fpn-fine_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', 34.0, 35.0),
    'fcos_r50-caffe_fpn-fine_gn-head_1x_coco.py':
    ('fcos_r50-caffe_fpn_gn-head_1x_coco.py', 32.3, 33.3),
    'mask-rcnn_r50_fpn-fine_1x_coco.py': ('mask-rcnn_r50_fpn_1x_coco.py', 44.4, 45.5),  # T. 7
    'mask-rcnn_r50_fpn-fine_2x_coco.py': ('mask-rcnn_r50_fpn_2x_coco.py', 44.4, 45.5),
    'fpn-fine_r50_4xb2-80k_cityscapes-512x1024.py':
    ('fpn_r50_4xb2-80k_cityscapes-512x1024.py', 28.5, 30.1),
}
# ablation -> (parent, dotted key under model.neck that changes, new value)
ABLATIONS = {
    'faster-rcnn_r50_fpn-fine-vanilla_1x_coco.py': (MAIN, 'fine_cfg.attention', 'vanilla'),
    'faster-rcnn_r50_fpn-fine-window_1x_coco.py': (MAIN, 'fine_cfg.attention', 'window'),
    'faster-rcnn_r50_fpn-fine-area_1x_coco.py': (MAIN, 'fine_cfg.attention', 'area'),
    'faster-rcnn_r50_fpn-fine-linear_1x_coco.py': (MAIN, 'fine_cfg.attention', 'linear'),
    'faster-rcnn_r50_fpn-fine-r1_1x_coco.py': (MAIN, 'fine_cfg.ratio', 1),
    'faster-rcnn_r50_fpn-fine-r4_1x_coco.py': (MAIN, 'fine_cfg.ratio', 4),
    'faster-rcnn_r50_fpn-fine-k1_1x_coco.py': (MAIN, 'fine_kernel_sizes', (1, 1)),
    'faster-rcnn_r50_fpn-fine-k2_1x_coco.py': (MAIN, 'fine_kernel_sizes', (2, 2)),
    'faster-rcnn_r50_fpn-fine-r1-k1_1x_coco.py':
    ('faster-rcnn_r50_fpn-fine-k1_1x_coco.py', 'fine_cfg.ratio', 1),
    'faster-rcnn_r50_fpn-fine-r4-k1_1x_coco.py':
    ('faster-rcnn_r50_fpn-fine-k1_1x_coco.py', 'fine_cfg.ratio', 4),
    'faster-rcnn_r50_fpn-fine-r1-k2_1x_coco.py':
    ('faster-rcnn_r50_fpn-fine-k2_1x_coco.py', 'fine_cfg.ratio', 1),
    'faster-rcnn_r50_fpn-fine-r4-k2_1x_coco.py':
    ('faster-rcnn_r50_fpn-fine-k2_1x_coco.py', 'fine_cfg.ratio', 4),
    **{f'faster-rcnn_r50_fpn-fine-h{h}_1x_coco.py': (MAIN, 'fine_cfg.head_dim', C // h)
       for h in (1, 4, 8, 32, 64, 128)},
    'faster-rcnn_r50_fpn-fine-maxpool_1x_coco.py': (MAIN, 'fine_cfg.pooling', 'max'),
    'faster-rcnn_r50_fpn-fine-dwconv_1x_coco.py': (MAIN, 'fine_cfg.pooling', 'dwconv'),
    'faster-rcnn_r50_fpn-fine-direct_1x_coco.py': (MAIN, 'fine_cfg.modulation', 'direct'),
    'faster-rcnn_r50_fpn-fine-nomod_1x_coco.py': (MAIN, 'fine_cfg.modulation', 'none'),
    'faster-rcnn_r50_fpn-fine-xavier_1x_coco.py': (MAIN, 'fine_cfg.zeros_init', False),
}
OTHER = {'faster-rcnn_r50_fpn-fine-public_1x_coco.py'}
BASELINES = {b for b, _, _ in MODELS.values()}
CUSTOM_IMPORTS = "custom_imports = dict(imports=['fusion_necks.registry']"


pytestmark = pytest.mark.usefixtures('single_thread')


def path(name):
    return osp.join(FPN_DIR if name in BASELINES else CFG_DIR, name)


def load(name):
    from mmengine.config import Config
    return Config.fromfile(path(name))


@pytest.fixture(scope='module')
def cfgs():
    return {name: load(name) for name in CONFIGS + sorted(BASELINES)}


def flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = tuple(v) if isinstance(v, list) else v
    return out


def build(cfg):
    """The model of a config, offline (no pretrained weights), with plain BN."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    model_cfg = cfg.model.copy()
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS as REG
        model_cfg.backbone.init_cfg = None
    else:
        from mmseg.registry import MODELS as REG
        model_cfg.pretrained = None
    return revert_sync_batchnorm(REG.build(model_cfg))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_the_expected_configs_exist():
    assert set(CONFIGS) == set(MODELS) | set(ABLATIONS) | OTHER
    assert all(osp.isfile(path(b)) for b in BASELINES)


def test_every_config_parses_and_imports_fusion_necks(cfgs):
    for name, cfg in cfgs.items():
        assert cfg.custom_imports == dict(imports=['fusion_necks.registry'],
                                          allow_failed_imports=False), name
        # set once, in the configs whose only base is mmdet::/mmseg:: (the baselines);
        # a config derived from a local one inherits it
        text = open(path(name)).read()
        assert (CUSTOM_IMPORTS in text) == (name in BASELINES), name
        assert cfg.default_scope == ('mmseg' if 'cityscapes' in name else 'mmdet'), name
        is_fine = name not in BASELINES
        assert (cfg.model.neck.type == 'FINEFPN') == is_fine, name


def test_fine_configs_change_only_the_neck(cfgs):
    for name, (base, _, _) in MODELS.items():
        a, b = flat(cfgs[name].to_dict()), flat(cfgs[base].to_dict())
        diff = {k for k in set(a) | set(b) if a.get(k, '<missing>') != b.get(k, '<missing>')}
        assert diff and all(k.startswith('model.neck.') for k in diff), (name, diff)
        assert {k for k in diff if not k.startswith(('model.neck.fine_', 'model.neck.type'))} \
            == set(), (name, diff)
        assert b['model.neck.type'] == 'FPN'


def test_ablations_change_exactly_one_key(cfgs):
    for name, (parent, key, value) in ABLATIONS.items():
        a, b = flat(cfgs[name].to_dict()), flat(cfgs[parent].to_dict())
        diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert diff == {f'model.neck.{key}'}, (name, diff)
        assert a[f'model.neck.{key}'] == value, name


@pytest.fixture(scope='module')
def param_counts(cfgs):
    from torch.nn.modules.batchnorm import _BatchNorm
    counts = {}
    for name, cfg in cfgs.items():
        model = build(cfg)
        counts[name] = n_params(model)
        counts[name, 'backbone_bn'] = sum(
            p.numel() for m in model.backbone.modules() if isinstance(m, _BatchNorm)
            for p in m.parameters())
    return counts


def test_every_config_builds_and_the_paper_parameter_counts(param_counts):
    counts = param_counts
    for name, (base, paper_base, paper_fine) in MODELS.items():
        delta = counts[name] - counts[base]
        # Eqs. 5-7: two FINE blocks of four C x C projections (0.52M); the paper reports
        # +1.0M (detectors) to +1.6M (Semantic FPN): see docs/fine.md
        assert delta == FINE_DEFAULT == 524288, name
        assert delta <= 1.2e6
        if not name.startswith('retinanet'):
            # mmdet/mmseg baselines match the paper's (torchvision / mmseg) counts
            assert abs(counts[base] / 1e6 - paper_base) < 0.05, (base, counts[base])
    # RetinaNet: the paper's 34.0M is torchvision's retinanet_resnet50_fpn (34,014,999),
    # which builds P6 from P5 (3x3 conv 256->256) where mmdet builds it from C5
    # (2048->256), has 91 classes instead of 80 and frozen BN (affine terms are buffers)
    base = 'retinanet_r50_fpn_1x_coco.py'
    p6_from_c5 = (2048 - 256) * 256 * 9
    cls_91 = (256 * 9 + 1) * 9 * (91 - 80)   # 9 anchors x 11 more classes, with bias
    torchvision_count = counts[base] - p6_from_c5 + cls_91 - counts[base, 'backbone_bn']
    assert torchvision_count == 34014999
    # Ablations: only the DWConv sampler adds parameters (Table 6: +6.14K for kernels
    # 2, 4 (low) and 2 (high; k=1 needs none)); heads/attention/r/k/modulation add none
    fine = counts[MAIN]
    for name in ABLATIONS:
        extra = 256 * (4 + 16 + 4) if 'dwconv' in name else 0
        assert counts[name] - fine == extra, name
    assert counts['faster-rcnn_r50_fpn-fine-public_1x_coco.py'] - fine == 2 * 4 * C


@pytest.mark.parametrize('name', [MAIN, 'fpn-fine_r50_4xb2-80k_cityscapes-512x1024.py'])
def test_fine_model_runs_end_to_end(cfgs, name):
    """The whole model with FINE runs on an image whose size is not a multiple of 32."""
    model = build(cfgs[name]).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 100, 164))
    if cfgs[name].default_scope == 'mmdet':
        assert [tuple(f.shape) for f in feats] == [(1, 256, 25, 41), (1, 256, 13, 21),
                                                    (1, 256, 7, 11), (1, 256, 4, 6),
                                                    (1, 256, 2, 3)]
    else:
        assert [tuple(f.shape) for f in feats] == [(1, 256, 25, 41), (1, 256, 13, 21),
                                                    (1, 256, 7, 11), (1, 256, 4, 6)]
    assert all(torch.isfinite(f).all() for f in feats)


def _fine_blocks(neck_cfg, scope):
    """``{name: (class, repr, heads, #params)}`` of the FINE blocks of a neck config."""
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    from mmengine.registry import DefaultScope
    if scope == 'mmdet':
        from mmdet.registry import MODELS as REG
    else:
        from mmseg.registry import MODELS as REG
    with DefaultScope.overwrite_default_scope(scope):  # a leaked scope must not redirect
        neck = REG.build(neck_cfg)
    return {name: (type(m).__name__, m.extra_repr(), m.num_heads, m.ratio, m.kernel_size,
                   m.attn.head_dim, sum(p.numel() for p in m.parameters()))
            for name, m in neck.fine_layers.items()}


def test_short_fine_configs_build_the_main_configs_fine_blocks(cfgs):
    """The FINE model configs other than the main one say only ``type='FINEFPN'``: the
    module defaults must equal the paper's values that the main config spells out."""
    main = cfgs[MAIN].model.neck
    assert main.fine_kernel_sizes == (1, 2) and main.fine_cfg == dict(
        ratio=2, head_dim=16, attention='aats', pooling='avg', modulation='residual',
        upsample_mode='nearest')
    reference = _fine_blocks(main, 'mmdet')
    assert sorted(reference) == ['level1', 'level2']   # low strides 8 and 16
    assert {v[2:6] for v in reference.values()} == {(16, 2, 1, 16), (16, 2, 2, 16)}
    for name in MODELS:
        if name == MAIN:
            continue
        cfg = cfgs[name]
        neck = cfg.model.neck
        assert neck.type == 'FINEFPN' and 'fine_cfg' not in neck \
            and 'fine_kernel_sizes' not in neck, name
        blocks = _fine_blocks(neck, cfg.default_scope)
        explicit = _fine_blocks(dict(neck, fine_kernel_sizes=main.fine_kernel_sizes,
                                     fine_cfg=main.fine_cfg), cfg.default_scope)
        assert blocks == explicit, name
        # the main config's blocks, at the same pyramid levels (keys are input indices)
        assert blocks == reference, name


def test_init_of_w_o_per_config(cfgs):
    """Zero W_O (FINE starts as the identity) with the residual modulation; Xavier for the
    direct/none ablations (a zero M would switch F_low off) and the xavier config."""
    xavier = {f'faster-rcnn_r50_fpn-fine-{x}_1x_coco.py'
              for x in ('direct', 'nomod', 'xavier', 'public')}
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    from mmdet.registry import MODELS as REG
    from mmengine.registry import DefaultScope
    for name in (MAIN, *ABLATIONS, *OTHER):
        with DefaultScope.overwrite_default_scope('mmdet'):
            neck = REG.build(cfgs[name].model.neck)
        for block in neck.fine_layers.values():
            zero = bool(torch.count_nonzero(block.attn.out_proj.weight) == 0)
            assert block.zeros_init is zero is (name not in xavier), name

