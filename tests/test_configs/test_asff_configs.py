"""configs/asff: every config parses and builds; ASFF configs differ from their baseline
(the official FPN detectors in configs/fpn/, YOLOv3 here) only in the neck, ablations from
the main ASFF config in exactly one key."""
import glob
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG_DIR = osp.join(ROOT, 'configs', 'asff')
FPN_DIR = osp.join(ROOT, 'configs', 'fpn')   # the official FPN baselines, shared with FINE
CONFIGS = sorted(glob.glob(osp.join(CFG_DIR, '*.py')))
FPN_BASELINES = ['retinanet_r50_fpn_1x_coco.py', 'fcos_r50-caffe_fpn_gn-head_1x_coco.py',
                 'faster-rcnn_r50_fpn_1x_coco.py']

# ASFF config -> (baseline, fused levels, ASFF parameters from the design notes (M))
ASFF = {
    'retinanet_r50_fpn-asff_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-p3p5_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2]),
    'retinanet_r50_fpn-asff-simple_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-c8_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-bn_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-r1_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-e1_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-i128_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'retinanet_r50_fpn-asff-lite_1x_coco.py': ('retinanet_r50_fpn_1x_coco.py', [0, 1, 2]),
    'fcos_r50-caffe_fpn-asff_gn-head_1x_coco.py':
    ('fcos_r50-caffe_fpn_gn-head_1x_coco.py', [0, 1, 2, 3, 4]),
    'fcos_r50-caffe_fpn-asff-p3p5_gn-head_1x_coco.py':
    ('fcos_r50-caffe_fpn_gn-head_1x_coco.py', [0, 1, 2]),
    'faster-rcnn_r50_fpn-asff_1x_coco.py': ('faster-rcnn_r50_fpn_1x_coco.py', [0, 1, 2, 3, 4]),
    'faster-rcnn_r50_fpn-asff-p3p5_1x_coco.py': ('faster-rcnn_r50_fpn_1x_coco.py', [1, 2, 3]),
    'yolov3_d53-asff_8xb8-ms-608-273e_coco.py': ('yolov3_d53_8xb8-ms-608-273e_coco.py', [0, 1, 2]),
}
ABLATIONS = {   # RetinaNet ablations: the one key each changes in the ASFF neck dict
    'retinanet_r50_fpn-asff-p3p5_1x_coco.py': 'fuse_levels',
    'retinanet_r50_fpn-asff-simple_1x_coco.py': 'weight_mode',
    'retinanet_r50_fpn-asff-c8_1x_coco.py': 'compress_c',
    'retinanet_r50_fpn-asff-bn_1x_coco.py': 'norm_cfg',
    # cheaper settings that change one key
    'retinanet_r50_fpn-asff-r1_1x_coco.py': 'fuse_range',
    'retinanet_r50_fpn-asff-e1_1x_coco.py': 'expand_kernel',
    'retinanet_r50_fpn-asff-i128_1x_coco.py': 'inter_channels',
}
MAIN = 'retinanet_r50_fpn-asff_1x_coco.py'


def load(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(FPN_DIR if name in FPN_BASELINES else CFG_DIR, name))


def test_the_expected_configs_exist():
    names = {osp.basename(p) for p in CONFIGS}
    assert set(ASFF) | {b for b, _ in ASFF.values()} <= names | set(FPN_BASELINES)
    assert not names & set(FPN_BASELINES)   # kept once, in configs/fpn/
    assert all(osp.isfile(osp.join(FPN_DIR, b)) for b in FPN_BASELINES)


@pytest.fixture(scope='module')
def cfgs():
    return {name: load(name) for name in [osp.basename(p) for p in CONFIGS] + FPN_BASELINES}


def test_every_config_imports_fusion_necks(cfgs):
    for name, cfg in cfgs.items():
        assert cfg.custom_imports == dict(imports=['fusion_necks.registry'],
                                          allow_failed_imports=False), name
        assert cfg.default_scope == 'mmdet', name


def _without_neck(cfg):
    """The config without ``model.neck`` and without ``asff_neck``, the variable of
    ``configs/_base_/necks/asff*.py`` that the ASFF configs build their neck from."""
    d = cfg.to_dict()
    d['model'] = {k: v for k, v in d['model'].items() if k != 'neck'}
    d.pop('asff_neck', None)
    return d


@pytest.mark.parametrize('name', sorted(ASFF))
def test_asff_configs_differ_from_their_baseline_only_by_the_asff_neck(cfgs, name):
    cfg, (base_name, fused) = cfgs[name], ASFF[name]
    base = cfgs[base_name]
    assert _without_neck(cfg) == _without_neck(base)
    neck = cfg.model.neck
    assert isinstance(neck, list) and len(neck) == 2
    assert neck[0] == base.model.neck             # the baseline neck, unchanged, then ASFF
    assert neck[1].type == 'ASFFNeck'
    assert set(cfg) - set(base) == {'asff_neck'}  # the only new top-level key: the neck's source
    assert neck[1].get('fuse_levels', list(range(len(fused) if 'yolo' in name else 5))) == fused


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablations_change_exactly_one_key(cfgs, name):
    main, abl = cfgs[MAIN].model.neck, cfgs[name].model.neck
    assert abl[0] == main[0]
    keys = set(main[1]) | set(abl[1])
    changed = {k for k in keys if main[1].get(k) != abl[1].get(k)}
    assert changed == {ABLATIONS[name]}
    assert _without_neck(cfgs[name]) == _without_neck(cfgs[MAIN])


def _n(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def built(cfgs):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    return {name: MODELS.build(cfg.model) for name, cfg in cfgs.items()}


def test_every_config_builds_and_adds_only_the_asff_parameters(built):
    from fusion_necks.necks.asff_neck import ASFFNeck
    for name, (base_name, fused) in ASFF.items():
        model, base = built[name], built[base_name]
        asff = model.neck[1]
        assert isinstance(asff, ASFFNeck), name
        assert asff.fuse_levels == fused, name
        assert _n(model) == _n(base) + _n(asff), name
    # the full RetinaNet/FCOS/Faster ASFF over 5 uniform-256 levels: 9.62 M (design notes
    # §2.2); P3-P5 only: 3.78 M
    assert round(_n(built[MAIN].neck[1]) / 1e6, 2) == 9.62
    assert round(_n(built['retinanet_r50_fpn-asff-p3p5_1x_coco.py'].neck[1]) / 1e6, 2) == 3.78
    # the cheaper settings (docs/asff.md): neighbours only, 1x1 expand, 128-wide fusion, lite
    # fuse_range=1: each level keeps its own expand and 1-2 sources instead of 4
    cheap = {'r1': 5.63, 'e1': 7.00, 'i128': 4.98, 'lite': 1.54}
    for key, m in cheap.items():
        asff = built[f'retinanet_r50_fpn-asff-{key}_1x_coco.py'].neck[1]
        assert round(_n(asff) / 1e6, 2) == m, key


def _small_model(cfg):
    """The configured detector with ResNet-18 instead of ResNet-50 (test budget)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = cfg.copy()
    if cfg.model.backbone.type == 'ResNet':
        cfg.model.backbone.depth = 18
        cfg.model.backbone.init_cfg = None
        cfg.model.neck[0].in_channels = [64, 128, 256, 512]
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_train_step_and_predict(cfgs):
    """One loss + backward and one predict through RetinaNet + FPN + 5-level ASFF.

    The ResNet-50 backbone is swapped for ResNet-18 (and the FPN input widths with it)
    to fit the test budget on 2 CPU cores; neck list, ASFF and head are as configured.
    """
    from mmdet.testing import demo_mm_inputs
    model = _small_model(cfgs['retinanet_r50_fpn-asff_1x_coco.py']).train()
    packed = demo_mm_inputs(2, [[3, 64, 96], [3, 60, 90]], num_items=[3, 2])
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None for p in model.neck[1].parameters())
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False), mode='predict')
    assert len(results) == 2 and all(hasattr(r, 'pred_instances') for r in results)


@pytest.mark.parametrize('name, n_levels', [
    ('fcos_r50-caffe_fpn-asff-p3p5_gn-head_1x_coco.py', 5),
    ('faster-rcnn_r50_fpn-asff-p3p5_1x_coco.py', 5),
    ('yolov3_d53-asff_8xb8-ms-608-273e_coco.py', 3),
])
def test_heads_consume_the_asff_outputs(cfgs, name, n_levels):
    """The whole detector runs on the neck list's output (mode='tensor')."""
    from mmdet.testing import demo_mm_inputs
    model = _small_model(cfgs[name]).eval()
    data = model.data_preprocessor(demo_mm_inputs(1, [[3, 64, 96]]), False)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        out = model(**data, mode='tensor')
    assert isinstance(feats, tuple) and len(feats) == n_levels
    assert out is not None
