"""The FPN contract of ``FINEFPN`` with its DEFAULT keys: any FPN config that
the framework's ``FPN`` builds switches by changing ``type='FPN'`` to ``type='FINEFPN'``.

- every case of mmdet's ``tests/test_models/test_necks/test_necks.py::test_fpn`` (v3.3.0)
  and mmseg's ``tests/test_models/test_necks/test_fpn.py::test_fpn`` (v1.2.2), written out
  here with real shape assertions (upstream's mmdet asserts are no-op expressions), built
  through the registry with ``type='FINEFPN'`` and no FINE keys;
- a wider matrix of FPN configs (1 to 5 levels, start/end levels, num_outs, every
  ``add_extra_convs`` variant, norms, activations, upsample variants, channel counts not
  divisible by 16) on both frameworks: same build outcome as ``FPN``, same output shapes;
- on each case: FINE off (``fine_kernel_sizes=()``) is ``FPN`` exactly with the same
  weights (strict load, ``torch.equal``), the default FINE with ``FPN``'s weights is
  ``FPN`` exactly at init (``W_O = 0``), and a live FINE changes exactly the levels at and
  below its highest step;
- the default rules: heads (``d = 16`` where 16 divides C, else the divisor of C nearest
  to C / 16, ties to more heads, with a warning), kernels per number of top-down steps;
  explicit settings that cannot work raise a ValueError naming the argument.
"""
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.necks.fine_top_down import default_fine_kernel_sizes

SCOPES = ('mmdet', 'mmseg')


pytestmark = pytest.mark.usefixtures('single_thread')


def build(scope, **cfg):
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def pyramid(h, w, channels, seed=0):
    """Backbone-like maps: each level ceil(previous / 2)."""
    g = torch.Generator().manual_seed(seed)
    feats = []
    for c in channels:
        feats.append(torch.rand(1, c, h, w, generator=g))
        h, w = -(-h // 2), -(-w // 2)
    return feats


@pytest.fixture
def mm_warnings():
    """WARNING records that reach mmengine's current logger (where FINEFPN logs)."""
    records = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = _Keep(level=logging.WARNING)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def check_fine_contract(scope, cfg, feats):
    """``FINEFPN(**cfg)`` with default keys against ``FPN(**cfg)`` of the same framework:
    same outputs with FINE off and at init, and a live FINE confined to its levels.
    Returns the default FINEFPN and its outputs."""
    torch.manual_seed(0)
    fpn = build(scope, type='FPN', **cfg).eval()
    neck = build(scope, type='FINEFPN', **cfg).eval()
    off = build(scope, type='FINEFPN', fine_kernel_sizes=(), **cfg).eval()
    assert type(fpn).__name__ == 'FPN' and type(neck).__name__ == 'FINEFPN'
    with torch.no_grad():
        ref = fpn(feats)
        # (a) FINE off: FPN's parameters exactly (strict) and FPN's outputs bit for bit
        assert len(off.fine_layers) == 0
        off.load_state_dict(fpn.state_dict())
        out = off(feats)
        assert len(out) == len(ref) and all(torch.equal(a, b) for a, b in zip(out, ref))
        # (b) default FINE with FPN's weights: W_O = 0 at init, so exactly FPN
        result = neck.load_state_dict(fpn.state_dict(), strict=False)
        assert not result.unexpected_keys
        assert all(k.startswith('fine_layers.') for k in result.missing_keys)
        out = neck(feats)
        assert [o.shape for o in out] == [r.shape for r in ref]
        assert all(torch.equal(a, b) for a, b in zip(out, ref))
        # (c) live FINE (Xavier W_O): changes the outputs at and below its highest step
        # (output index = input level - start_level), nothing above, no extra level
        if len(neck.fine_layers):
            live = build(scope, type='FINEFPN', **cfg).eval()
            live.load_state_dict(neck.state_dict())
            for layer in live.fine_layers.values():
                nn.init.xavier_uniform_(layer.attn.out_proj.weight)
            highest = max(int(n[len('level'):]) for n in live.fine_layers) - live.start_level
            out = live(feats)
            for i, (a, b) in enumerate(zip(out, ref)):
                assert a.shape == b.shape and torch.isfinite(a).all()
                assert torch.equal(a, b) == (i > highest), (i, highest)
    return neck, neck(feats)


# --------------------------------------------------------------------------- mmdet test_fpn
S = 64
DET_IN = [8, 16, 32, 64]
DET_OUT = 8            # not divisible by d = 16: the head rule gives 1 head of 8 channels


def _sizes(start, n):
    return [(1, DET_OUT, S // 2**(start + i), S // 2**(start + i)) for i in range(n)]


# (kwargs, expected): AssertionError, or (output shapes, add_extra_convs after build)
MMDET_TEST_FPN = {
    'end_level=-1': (dict(start_level=0, end_level=-1, num_outs=5), (_sizes(0, 5), False)),
    'end_level=3': (dict(start_level=0, end_level=3, num_outs=5), (_sizes(0, 5), False)),
    'num_outs!=end-start+1': (dict(start_level=1, end_level=2, num_outs=3), AssertionError),
    'num_outs<len-start': (dict(start_level=1, num_outs=2), AssertionError),
    'end_level>len-1': (dict(start_level=1, end_level=4, num_outs=2), AssertionError),
    'num_outs!=end-start': (dict(start_level=1, end_level=3, num_outs=1), AssertionError),
    'on_xxx': (dict(start_level=1, add_extra_convs='on_xxx', num_outs=5), AssertionError),
    'extra=True': (dict(start_level=1, add_extra_convs=True, num_outs=5),
                   (_sizes(1, 5), 'on_input')),
    'extra=False': (dict(start_level=1, add_extra_convs=False, num_outs=5),
                    (_sizes(1, 5), False)),
    'lateral-bn': (dict(start_level=1, add_extra_convs=True, no_norm_on_lateral=False,
                        norm_cfg=dict(type='BN', requires_grad=True), num_outs=5),
                   (_sizes(1, 5), 'on_input')),
    'bilinear': (dict(start_level=1, add_extra_convs=True,
                      upsample_cfg=dict(mode='bilinear', align_corners=True), num_outs=5),
                 (_sizes(1, 5), 'on_input')),
    'scale_factor': (dict(start_level=1, add_extra_convs=True,
                          upsample_cfg=dict(scale_factor=2), num_outs=5),
                     (_sizes(1, 5), 'on_input')),
    'on_input': (dict(add_extra_convs='on_input', start_level=1, num_outs=5),
                 (_sizes(1, 5), 'on_input')),
    'on_lateral': (dict(add_extra_convs='on_lateral', start_level=1, num_outs=5),
                   (_sizes(1, 5), 'on_lateral')),
    'on_output': (dict(add_extra_convs='on_output', start_level=1, num_outs=5),
                  (_sizes(1, 5), 'on_output')),
}


def test_mmdet_test_fpn_has_all_15_cases():
    assert len(MMDET_TEST_FPN) == 15
    assert sum(v[1] is AssertionError for v in MMDET_TEST_FPN.values()) == 5


@pytest.mark.parametrize('case', list(MMDET_TEST_FPN))
def test_mmdet_test_fpn_case_with_default_keys(case, mm_warnings):
    kwargs, expected = MMDET_TEST_FPN[case]
    cfg = dict(in_channels=DET_IN, out_channels=DET_OUT, **kwargs)
    if expected is AssertionError:
        with pytest.raises(AssertionError):
            build('mmdet', type='FPN', **cfg)
        with pytest.raises(AssertionError):
            build('mmdet', type='FINEFPN', **cfg)
        return
    shapes, extra = expected
    feats = [torch.rand(1, c, S // 2**i, S // 2**i) for i, c in enumerate(DET_IN)]
    # upstream's own checks, in train mode as upstream runs them
    neck = build('mmdet', type='FINEFPN', **cfg)
    outs = neck(feats)
    assert neck.add_extra_convs == extra
    assert len(outs) == neck.num_outs == len(shapes)
    assert [tuple(o.shape) for o in outs] == shapes
    if case == 'lateral-bn':
        assert any(isinstance(m, _BatchNorm) for m in neck.lateral_convs.modules())
    # the defaults: the paper's two steps (k = 1, 2) at the two coarsest steps, 1 head of 8
    top = neck.backbone_end_level - 1
    assert neck.fine_kernel_sizes == (1, 2)
    assert {n: f.kernel_size for n, f in neck.fine_layers.items()} == \
        {f'level{top - 1}': 1, f'level{top - 2}': 2}
    assert all(f.num_heads == 1 and f.attn.head_dim == 8 for f in neck.fine_layers.values())
    assert any('num_heads=1' in m for m in mm_warnings), mm_warnings
    check_fine_contract('mmdet', cfg, feats)


# --------------------------------------------------------------------------- mmseg test_fpn
def test_mmseg_test_fpn_case_with_default_keys(mm_warnings):
    in_channels = [64, 128, 256, 512]
    inputs = [torch.randn(1, c, 56 // 2**i, 56 // 2**i) for i, c in enumerate(in_channels)]
    cfg = dict(in_channels=in_channels, out_channels=64, num_outs=len(in_channels))
    fpn = build('mmseg', **cfg, type='FINEFPN')
    outputs = fpn(inputs)
    assert [tuple(o.shape) for o in outputs] == [
        (1, 64, 56, 56), (1, 64, 28, 28), (1, 64, 14, 14), (1, 64, 7, 7)]
    # 64 channels: d = 16 -> 4 heads, nothing logged
    assert {n: (f.kernel_size, f.num_heads) for n, f in fpn.fine_layers.items()} == \
        {'level2': (1, 4), 'level1': (2, 4)}
    assert not mm_warnings
    check_fine_contract('mmseg', cfg, inputs)


# --------------------------------------------------------------------------- wider matrix
IN4 = [8, 16, 32, 64]
MATRIX = {
    # one to five levels (0 to 4 top-down steps)
    '1-level': dict(in_channels=[8], out_channels=8, num_outs=1),
    '1-level+pool': dict(in_channels=[8], out_channels=8, num_outs=3),
    '1-level+on_output': dict(in_channels=[8], out_channels=8, num_outs=2,
                              add_extra_convs='on_output'),
    '2-levels': dict(in_channels=[16, 32], out_channels=8, num_outs=2),
    '2-levels+on_input': dict(in_channels=[16, 32], out_channels=24, num_outs=4,
                              add_extra_convs='on_input'),
    '3-levels': dict(in_channels=[8, 16, 32], out_channels=12, num_outs=3),
    '5-levels': dict(in_channels=[4, 8, 16, 32, 64], out_channels=40, num_outs=5),
    # start_level / end_level (end_level is inclusive in mmdet, exclusive in mmseg)
    'start=1': dict(in_channels=IN4, out_channels=8, start_level=1, num_outs=3),
    'start=2': dict(in_channels=IN4, out_channels=8, start_level=2, num_outs=2),
    'start=2+on_lateral': dict(in_channels=IN4, out_channels=8, start_level=2, num_outs=4,
                               add_extra_convs='on_lateral'),
    'start=3': dict(in_channels=IN4, out_channels=8, start_level=3, num_outs=1),
    'start=3+on_input': dict(in_channels=IN4, out_channels=8, start_level=3, num_outs=3,
                             add_extra_convs='on_input'),
    'end=1': dict(in_channels=IN4, out_channels=8, end_level=1, num_outs=2),
    'end=2': dict(in_channels=IN4, out_channels=8, end_level=2, num_outs=3),
    'end=3': dict(in_channels=IN4, out_channels=8, end_level=3, num_outs=3),
    'start=1,end=1': dict(in_channels=IN4, out_channels=8, start_level=1, end_level=1,
                          num_outs=1),
    'start=1,end=2': dict(in_channels=IN4, out_channels=8, start_level=1, end_level=2,
                          num_outs=2),
    'start=1,end=3': dict(in_channels=IN4, out_channels=8, start_level=1, end_level=3,
                          num_outs=2),
    'end=2,outs=2': dict(in_channels=IN4, out_channels=8, end_level=2, num_outs=2),
    'start=1,end=2,outs=1': dict(in_channels=IN4, out_channels=8, start_level=1, end_level=2,
                                 num_outs=1),
    'num_outs-too-small': dict(in_channels=IN4, out_channels=8, num_outs=3),
    'end>len': dict(in_channels=IN4, out_channels=8, end_level=5, num_outs=5),
    # extra levels
    'extra=True': dict(in_channels=IN4, out_channels=8, num_outs=6, add_extra_convs=True),
    'extra=True,on_inputs': dict(in_channels=IN4, out_channels=8, num_outs=5,
                                 add_extra_convs=True, extra_convs_on_inputs=True),
    'on_output+relu': dict(in_channels=IN4, out_channels=8, num_outs=6,
                           add_extra_convs='on_output', relu_before_extra_convs=True),
    'on_lateral+relu': dict(in_channels=IN4, out_channels=8, num_outs=5,
                            add_extra_convs='on_lateral', relu_before_extra_convs=True),
    'pool': dict(in_channels=IN4, out_channels=8, num_outs=6),
    # norms, activations
    'bn': dict(in_channels=IN4, out_channels=8, num_outs=4, norm_cfg=dict(type='BN')),
    'bn+lateral': dict(in_channels=IN4, out_channels=8, num_outs=5, add_extra_convs=True,
                       norm_cfg=dict(type='BN'), no_norm_on_lateral=False),
    'bn,no-lateral': dict(in_channels=IN4, out_channels=8, num_outs=4,
                          norm_cfg=dict(type='BN'), no_norm_on_lateral=True),
    'gn+relu': dict(in_channels=IN4, out_channels=8, num_outs=4,
                    norm_cfg=dict(type='GN', num_groups=4), act_cfg=dict(type='ReLU')),
    # upsampling of the top-down line
    'scale_factor': dict(in_channels=IN4, out_channels=8, num_outs=4,
                         upsample_cfg=dict(scale_factor=2)),
    'scale_factor+bilinear': dict(in_channels=IN4, out_channels=8, num_outs=4,
                                  upsample_cfg=dict(scale_factor=2, mode='bilinear')),
    'bilinear': dict(in_channels=IN4, out_channels=8, num_outs=4,
                     upsample_cfg=dict(mode='bilinear', align_corners=False)),
    'bicubic': dict(in_channels=IN4, out_channels=8, num_outs=4,
                    upsample_cfg=dict(mode='bicubic', align_corners=True)),
    'nearest-exact': dict(in_channels=IN4, out_channels=8, num_outs=4,
                          upsample_cfg=dict(mode='nearest-exact')),
    # channel counts for the head rule
    'C=24': dict(in_channels=IN4, out_channels=24, num_outs=4),
    'C=48': dict(in_channels=IN4, out_channels=48, num_outs=5, add_extra_convs='on_input'),
    'C=4': dict(in_channels=IN4, out_channels=4, num_outs=4),
}


@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('case', list(MATRIX))
def test_builds_wherever_fpn_builds(scope, case):
    cfg = MATRIX[case]
    if scope == 'mmdet' and 'extra_convs_on_inputs' in cfg:
        cfg = {k: v for k, v in cfg.items() if k != 'extra_convs_on_inputs'}
    try:
        build(scope, type='FPN', **cfg)
    except Exception as e:  # the framework rejects it: FINEFPN rejects it the same way
        with pytest.raises(type(e)):
            build(scope, type='FINEFPN', **cfg)
        return
    even = 'scale_factor' in cfg.get('upsample_cfg', {})   # FPN needs exact halving then
    feats = pyramid(64, 64, cfg['in_channels']) if even else \
        pyramid(45, 62, cfg['in_channels'])
    neck, outs = check_fine_contract(scope, cfg, feats)
    steps = max(neck.backbone_end_level - neck.start_level - 1, 0)
    assert neck.fine_kernel_sizes == (1, 2)[:steps]
    assert len(neck.fine_layers) == min(steps, 2)
    c = cfg['out_channels']
    for layer in neck.fine_layers.values():
        assert layer.num_heads * layer.attn.head_dim == c
        if c % 16 == 0:
            assert layer.attn.head_dim == 16


def test_matrix_has_zero_to_four_step_cases():
    steps = set()
    for cfg in MATRIX.values():
        try:
            neck = build('mmdet', type='FPN', **cfg)
        except Exception:
            continue
        steps.add(neck.backbone_end_level - neck.start_level - 1)
    assert {0, 1, 2, 3, 4} <= steps


# --------------------------------------------------------------------------- heads rule
@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('channels,heads', [(8, 1), (24, 2), (40, 2), (256, 16), (128, 8)])
def test_head_rule_through_the_neck(scope, channels, heads, mm_warnings):
    """d = 16 where 16 divides C (C = 128, 256 unchanged, nothing logged); otherwise the
    divisor of C nearest to C / 16, ties (C = 24: 1 and 2) to more heads, logged once."""
    neck = build(scope, type='FINEFPN', in_channels=[8, 16, 32, 64], out_channels=channels,
                 num_outs=4)
    assert len(neck.fine_layers) == 2
    for layer in neck.fine_layers.values():
        assert layer.num_heads == heads and layer.attn.head_dim == channels // heads
    mine = [m for m in mm_warnings if 'FINEFPN' in m]
    if channels % 16 == 0:
        assert mine == []
    else:
        assert len(mine) == 1, mine            # once per neck, not once per block
        assert f'C={channels}' in mine[0] and f'num_heads={heads}' in mine[0] and \
            'head_dim=16' not in mine[0], mine[0]
    assert neck.fine_cfg == {}                 # the user's (empty) fine_cfg is kept as given


@pytest.mark.parametrize('scope', SCOPES)
def test_explicit_heads_are_taken_as_given(scope, mm_warnings):
    for fine_cfg, heads in ((dict(head_dim=8), 1), (dict(head_dim=2), 4),
                            (dict(num_heads=8), 8), (dict(head_dim=None), 1)):
        neck = build(scope, type='FINEFPN', in_channels=[8, 16, 32], out_channels=8,
                     num_outs=3, fine_cfg=fine_cfg)
        assert {f.num_heads for f in neck.fine_layers.values()} == {heads}, fine_cfg
    # only the unset (None) case is the rule's, and only it logs
    assert len([m for m in mm_warnings if 'FINEFPN' in m]) == 1


def test_paper_neck_is_unchanged():
    """C = 256 on a ResNet pyramid: the paper's 16 heads of 16, k = 1 at stride 16 and
    k = 2 at stride 8, plain addition at stride 4, 2 x 4 x 256^2 FINE parameters."""
    for scope in SCOPES:
        neck = build(scope, type='FINEFPN', in_channels=[256, 512, 1024, 2048],
                     out_channels=256, num_outs=5)
        fpn = build(scope, type='FPN', in_channels=[256, 512, 1024, 2048],
                    out_channels=256, num_outs=5)
        assert neck.fine_kernel_sizes == (1, 2)
        assert {n: (f.kernel_size, f.num_heads, f.attn.head_dim, f.ratio)
                for n, f in neck.fine_layers.items()} == \
            {'level2': (1, 16, 16, 2), 'level1': (2, 16, 16, 2)}
        n_fine = sum(p.numel() for p in neck.parameters())
        assert n_fine - sum(p.numel() for p in fpn.parameters()) == 2 * 4 * 256 * 256


# --------------------------------------------------------------------------- kernel rule
@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('levels,expected', [
    (1, {}),                                              # 0 steps: FINEFPN is the FPN
    (2, {'level0': 1}),                                   # 1 step: the coarsest, k = 1
    (3, {'level1': 1, 'level0': 2}),                      # 2 steps: the paper's (1, 2)
    (4, {'level2': 1, 'level1': 2}),                      # 3: plain addition at the finest
    (5, {'level3': 1, 'level2': 2}),                      # 4: plain addition below
])
def test_default_kernels_follow_the_number_of_steps(scope, levels, expected):
    in_channels = [8 * 2**i for i in range(levels)]
    neck = build(scope, type='FINEFPN', in_channels=in_channels, out_channels=16,
                 num_outs=levels)
    assert neck.fine_kernel_sizes == default_fine_kernel_sizes(levels - 1) == \
        (1, 2)[:levels - 1]
    assert {n: f.kernel_size for n, f in neck.fine_layers.items()} == expected
    # the same through start_level on a four-level backbone (1 step for start_level=2)
    if levels <= 4:
        neck = build(scope, type='FINEFPN', in_channels=[8, 16, 32, 64], out_channels=16,
                     start_level=4 - levels, num_outs=levels)
        shift = 4 - levels
        assert {n: f.kernel_size for n, f in neck.fine_layers.items()} == \
            {f'level{int(n[5:]) + shift}': k for n, k in expected.items()}


def test_default_kernels_rule():
    assert [default_fine_kernel_sizes(n) for n in range(-1, 6)] == \
        [(), (), (1,), (1, 2), (1, 2), (1, 2), (1, 2)]


@pytest.mark.parametrize('scope', SCOPES)
def test_explicit_kernels_are_taken_as_given(scope):
    neck = build(scope, type='FINEFPN', in_channels=[16, 32], out_channels=16, num_outs=2,
                 fine_kernel_sizes=[2])
    assert neck.fine_kernel_sizes == (2,) and neck.fine_layers['level0'].kernel_size == 2
    neck = build(scope, type='FINEFPN', in_channels=[8, 16, 32, 64], out_channels=16,
                 num_outs=4, fine_kernel_sizes=None)             # None = the default
    assert neck.fine_kernel_sizes == (1, 2)
    neck = build(scope, type='FINEFPN', in_channels=[8, 16, 32, 64], out_channels=16,
                 num_outs=4, fine_kernel_sizes=(1, 2, 4))
    assert {n: f.kernel_size for n, f in neck.fine_layers.items()} == \
        {'level2': 1, 'level1': 2, 'level0': 4}


# --------------------------------------------------------------------------- explicit bad
@pytest.mark.parametrize('scope', SCOPES)
@pytest.mark.parametrize('cfg,match', [
    # head_dim = 16 given explicitly where it does not divide C
    (dict(in_channels=IN4, out_channels=8, num_outs=4, fine_cfg=dict(head_dim=16)),
     r'fine_cfg .*channels \(8\) must be divisible by head_dim \(16\): head_dim must be one '
     r'of \[1, 2, 4, 8\]'),
    (dict(in_channels=IN4, out_channels=24, num_outs=4, fine_cfg=dict(num_heads=16)),
     r'fine_cfg .*divisible by num_heads \(16\): num_heads must be one of '
     r'\[1, 2, 3, 4, 6, 8, 12, 24\]'),
    (dict(in_channels=IN4, out_channels=8, num_outs=4, fine_cfg=dict(num_heads=2,
                                                                     head_dim=8)),
     'must equal channels'),
    # kernel lists longer than the steps
    (dict(in_channels=[16, 32], out_channels=8, num_outs=2, fine_kernel_sizes=(1, 2)),
     r'fine_kernel_sizes has 2 entries but this FPN has 1 top-down fusion step.*expected '
     r'at most 1 entry.*default \(1,\)'),
    (dict(in_channels=IN4, out_channels=8, start_level=3, num_outs=1,
          fine_kernel_sizes=(1,)),
     r'fine_kernel_sizes has 1 entries but this FPN has 0 top-down.*at most 0 entries'),
    (dict(in_channels=IN4, out_channels=8, num_outs=4, fine_kernel_sizes=(1, 2, 4, 8)),
     'at most 3 entries'),
])
def test_explicit_settings_that_cannot_work_raise(scope, cfg, match):
    with pytest.raises(ValueError, match=match):
        build(scope, type='FINEFPN', **cfg)
