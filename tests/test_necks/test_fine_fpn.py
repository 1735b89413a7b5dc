"""FPN+FINE necks (mmdet and mmseg flavours): equality with the frameworks' own FPN when
FINE is off or a no-op, mmdet's FPN contract cases with real shape assertions, odd
sizes, gradients, stage configuration and bad input."""
import pytest
import torch
from mmdet.models.necks import FPN as MMDetFPN
from mmseg.models.necks import FPN as MMSegFPN
from torch.nn.modules.batchnorm import _BatchNorm

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.layers import FINE
from fusion_necks.necks.fine_fpn_mmdet import FINEFPN as DetFINEFPN
from fusion_necks.necks.fine_fpn_mmseg import FINEFPN as SegFINEFPN

FLAVOURS = [(DetFINEFPN, MMDetFPN), (SegFINEFPN, MMSegFPN)]
IN_CHANNELS = [8, 16, 32, 64]
SMALL = dict(head_dim=4)  # out_channels=8 in the contract cases


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """These tensors are tiny: one intra-op thread avoids OpenMP oversubscription (which
    costs 50x on a shared 2-core machine) and keeps the module fast."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pyramid(h, w, channels=IN_CHANNELS, batch=1, seed=0):
    """Backbone-like maps: each level ceil(previous / 2), as strided convs give."""
    g = torch.Generator().manual_seed(seed)
    feats = []
    for c in channels:
        feats.append(torch.randn(batch, c, h, w, generator=g))
        h, w = -(-h // 2), -(-w // 2)
    return feats


def same_weights(neck, fpn):
    """Copy the FPN's weights into the FINE neck (FINE blocks keep theirs)."""
    result = neck.load_state_dict(fpn.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith('fine_layers.') for k in result.missing_keys)


def zero_fine(neck):
    with torch.no_grad():
        for layer in neck.fine_layers.values():
            layer.attn.out_proj.weight.zero_()


FPN_VARIANTS = [
    dict(num_outs=5, add_extra_convs=False),
    dict(num_outs=5, add_extra_convs=True),
    dict(num_outs=5, add_extra_convs='on_input'),
    dict(num_outs=5, add_extra_convs='on_lateral'),
    dict(num_outs=5, add_extra_convs='on_output'),
    dict(num_outs=5, add_extra_convs='on_output', relu_before_extra_convs=True),
    dict(num_outs=5, start_level=1, add_extra_convs='on_input'),       # RetinaNet
    dict(num_outs=4),                                                  # Semantic FPN
    dict(num_outs=4, norm_cfg=dict(type='BN'), no_norm_on_lateral=False),
    dict(num_outs=4, upsample_cfg=dict(mode='bilinear', align_corners=False)),
]


@pytest.mark.parametrize('flavour,fpn_cls', FLAVOURS)
@pytest.mark.parametrize('cfg', FPN_VARIANTS)
def test_equals_framework_fpn_when_fine_is_off_or_a_no_op(flavour, fpn_cls, cfg):
    torch.manual_seed(0)
    fpn = fpn_cls(IN_CHANNELS, 32, **cfg).eval()
    feats = pyramid(50, 67, batch=2)
    ref = fpn(feats)
    # (a) FINE switched off at every stage: exactly FPN
    off = flavour(IN_CHANNELS, 32, fine_kernel_sizes=(), **cfg).eval()
    assert len(off.fine_layers) == 0
    off.load_state_dict(fpn.state_dict())                       # strict: same parameters
    out = off(feats)
    assert len(out) == len(ref)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))
    # (b) FINE at every stage but with W_O = 0 (M = 0, Eq. 9 -> F_low): still exactly FPN,
    # so FINE sits exactly at the top-down addition and nothing else changes; the default
    # init is that (zeros_init), and so is a zeroed Xavier W_O
    steps = off.backbone_end_level - off.start_level - 1
    for zeros_init in (None, False):
        on = flavour(IN_CHANNELS, 32, fine_kernel_sizes=(1, 2, 4)[:steps],
                     fine_cfg=dict(zeros_init=zeros_init), **cfg).eval()
        assert len(on.fine_layers) == steps
        same_weights(on, fpn)
        if zeros_init is False:
            zero_fine(on)
        out = on(feats)
        assert all(torch.equal(a, b) for a, b in zip(out, ref))
    # (c) live FINE changes exactly the levels at and below its highest stage; the top
    # level and the extra levels (built from the top input/lateral/output) are untouched
    torch.manual_seed(1)
    live = flavour(IN_CHANNELS, 32, fine_cfg=dict(zeros_init=False), **cfg).eval()
    same_weights(live, fpn)
    out = live(feats)
    highest = max(int(n[len('level'):]) for n in live.fine_layers) - live.start_level
    for i, (a, b) in enumerate(zip(out, ref)):
        assert a.shape == b.shape
        assert torch.equal(a, b) == (i > highest), i


def test_mmdet_fpn_contract_cases():
    """mmdet tests/test_models/test_necks/test_necks.py::test_fpn with real assertions."""
    s = 64
    in_channels = [8, 16, 32, 64]
    feat_sizes = [s // 2**i for i in range(4)]
    out_channels = 8
    feats = [torch.rand(1, c, h, h) for c, h in zip(in_channels, feat_sizes)]
    kw = dict(fine_cfg=SMALL)

    with pytest.raises(AssertionError):   # num_outs != end_level - start_level + 1
        DetFINEFPN(in_channels, out_channels, start_level=1, end_level=2, num_outs=3, **kw)
    with pytest.raises(AssertionError):   # end_level > len(in_channels) - 1
        DetFINEFPN(in_channels, out_channels, start_level=1, end_level=4, num_outs=2, **kw)
    with pytest.raises(AssertionError):   # num_outs too small
        DetFINEFPN(in_channels, out_channels, start_level=1, end_level=3, num_outs=1, **kw)
    with pytest.raises(AssertionError):   # invalid add_extra_convs
        DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs='on_xxx',
                   num_outs=5, **kw)

    def check(neck, start_level, num_outs):
        outs = neck(feats)
        assert len(outs) == neck.num_outs == num_outs
        for i, out in enumerate(outs):
            size = s // 2**(i + start_level)
            assert out.shape == (1, out_channels, size, size), (i, out.shape)

    neck = DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs=True,
                      num_outs=5, **kw)
    assert neck.add_extra_convs == 'on_input'
    check(neck, 1, 5)
    neck = DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs=False,
                      num_outs=5, **kw)
    assert not neck.add_extra_convs
    check(neck, 1, 5)
    for mode in ('on_input', 'on_lateral', 'on_output'):
        neck = DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs=mode,
                          num_outs=5, **kw)
        assert neck.add_extra_convs == mode
        check(neck, 1, 5)
    neck = DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs=True,
                      no_norm_on_lateral=False, norm_cfg=dict(type='BN', requires_grad=True),
                      num_outs=5, **kw)
    assert any(isinstance(m, _BatchNorm) for m in neck.modules())
    check(neck, 1, 5)
    for up in (dict(mode='bilinear', align_corners=False), dict(scale_factor=2)):
        neck = DetFINEFPN(in_channels, out_channels, start_level=1, add_extra_convs=True,
                          upsample_cfg=up, num_outs=5, **kw)
        check(neck, 1, 5)
    neck = DetFINEFPN(in_channels, out_channels, start_level=0, add_extra_convs=True,
                      num_outs=5, **kw)
    check(neck, 0, 5)
    # end_level is inclusive in mmdet
    neck = DetFINEFPN(in_channels, out_channels, start_level=0, end_level=2, num_outs=3,
                      fine_kernel_sizes=(1, 2), **kw)
    assert set(neck.fine_layers) == {'level1', 'level0'}
    check(neck, 0, 3)


def test_mmseg_end_level_is_exclusive():
    neck = SegFINEFPN(IN_CHANNELS, 8, num_outs=3, end_level=3, fine_cfg=SMALL)
    assert neck.backbone_end_level == 3 and set(neck.fine_layers) == {'level1', 'level0'}
    outs = neck(pyramid(32, 32))
    assert [o.shape[-1] for o in outs] == [32, 16, 8]
    neck = SegFINEFPN(IN_CHANNELS, 8, num_outs=5, add_extra_convs=True, fine_cfg=SMALL)
    assert neck.add_extra_convs == 'on_output'
    assert [o.shape[-1] for o in neck(pyramid(32, 32))] == [32, 16, 8, 4, 2]


@pytest.mark.parametrize('flavour', [DetFINEFPN, SegFINEFPN])
def test_default_stages_follow_the_paper(flavour):
    neck = flavour([256, 512, 1024, 2048], 256, num_outs=5)
    # low stride 16 (input level 2) with k=1, low stride 8 (level 1) with k=2, none at 4
    assert set(neck.fine_layers) == {'level2', 'level1'}
    assert neck.fine_layers['level2'].kernel_size == 1
    assert neck.fine_layers['level1'].kernel_size == 2
    for layer in neck.fine_layers.values():
        assert isinstance(layer, FINE) and layer.ratio == 2 and layer.num_heads == 16
        assert (layer.attention, layer.pooling, layer.modulation, layer.upsample_mode) == \
            ('aats', 'avg', 'residual', 'nearest')
    # RetinaNet/FCOS (start_level=1): the same two steps are all there is
    neck = flavour([256, 512, 1024, 2048], 256, num_outs=5, start_level=1,
                   add_extra_convs='on_input')
    assert set(neck.fine_layers) == {'level2', 'level1'}
    # a C3-C5 backbone: stride 16 and 8 are input levels 1 and 0
    neck = flavour([512, 1024, 2048], 256, num_outs=3)
    assert set(neck.fine_layers) == {'level1', 'level0'}
    # FINE parameters: two blocks of four C x C projections
    fpn_cls = MMDetFPN if flavour is DetFINEFPN else MMSegFPN
    n_fine = sum(p.numel() for p in flavour([256, 512, 1024, 2048], 256, 5).parameters())
    n_fpn = sum(p.numel() for p in fpn_cls([256, 512, 1024, 2048], 256, 5).parameters())
    assert n_fine - n_fpn == 2 * 4 * 256 * 256


@pytest.mark.parametrize('flavour', [DetFINEFPN, SegFINEFPN])
def test_odd_input_sizes(flavour):
    """800x1333 without padding (ResNet levels 200x334 .. 25x42) and 13x21-like tops."""
    neck = flavour(IN_CHANNELS, 16, num_outs=5, fine_kernel_sizes=(1, 2, 4),
                   fine_cfg=dict(head_dim=8)).eval()
    for h, w in ((200, 334), (100, 167), (52, 84), (3, 5)):
        feats = pyramid(h, w)
        with torch.no_grad():
            outs = neck(feats)
        expect = [tuple(f.shape[-2:]) for f in feats]
        expect.append((-(-expect[-1][0] // 2), -(-expect[-1][1] // 2)))
        assert [tuple(o.shape[-2:]) for o in outs] == expect
        assert all(torch.isfinite(o).all() and o.shape[:2] == (1, 16) for o in outs)


@pytest.mark.parametrize('flavour', [DetFINEFPN, SegFINEFPN])
def test_every_fine_parameter_gets_a_gradient(flavour):
    neck = flavour(IN_CHANNELS, 16, num_outs=5, fine_kernel_sizes=(1, 2, 4),
                   fine_cfg=dict(head_dim=8, pooling='dwconv', bias=True, zeros_init=False))
    outs = neck(pyramid(40, 52, batch=2))
    sum((o ** 2).mean() for o in outs).backward()
    fine_params = [(n, p) for n, p in neck.named_parameters() if n.startswith('fine_layers')]
    # 3 blocks x (4 weights + 4 biases) + a low sampler each + high samplers where k > 1
    assert len(fine_params) == 3 * 8 + 3 + 2
    for name, p in fine_params:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_recording_through_the_neck():
    from fusion_necks.layers import iter_fusion_weight_maps, set_fusion_weight_recording
    neck = DetFINEFPN(IN_CHANNELS, 16, num_outs=4, fine_cfg=dict(head_dim=8))
    assert set_fusion_weight_recording(neck) == 2
    feats = pyramid(32, 48)
    neck(feats)
    maps = {(m, k): t.shape for m, k, t in iter_fusion_weight_maps(neck)}
    assert maps[('fine_layers.level2', 'low')] == (1, 16, 8, 12)
    assert maps[('fine_layers.level2', 'high')] == (1, 16, 4, 6)
    assert maps[('fine_layers.level1', 'M')] == (1, 16, 16, 24)
    assert maps[('fine_layers.level1', 'aligned')] == (1, 16, 16, 24)


def test_registered_in_both_frameworks():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    cfg = dict(type='FINEFPN', in_channels=IN_CHANNELS, out_channels=16, num_outs=4,
               fine_cfg=dict(head_dim=8))
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        assert type(DET.build(cfg)) is DetFINEFPN
    with DefaultScope.overwrite_default_scope('mmseg'):
        assert type(SEG.build(cfg)) is SegFINEFPN
    assert DET.get('FPN') is MMDetFPN and SEG.get('FPN') is MMSegFPN


@pytest.mark.parametrize('kwargs,err,match', [
    (dict(fine_kernel_sizes=(1, 2, 4, 8)), ValueError, '3 top-down fusion step'),
    (dict(fine_kernel_sizes=(1, -1)), ValueError, r'fine_kernel_sizes\[1\]'),
    (dict(fine_kernel_sizes=2), TypeError, 'sequence'),
    (dict(fine_cfg=dict(kernel_size=2)), ValueError, "must not set 'kernel_size'"),
    (dict(fine_cfg=dict(attention='sparse')), ValueError, 'attention must be one of'),
    (dict(fine_cfg=dict(num_heads=3)), ValueError, 'divisible by num_heads'),
    (dict(fine_cfg=dict(rate=2)), TypeError, 'rate'),
])
@pytest.mark.parametrize('flavour', [DetFINEFPN, SegFINEFPN])
def test_bad_construction_raises(flavour, kwargs, err, match):
    with pytest.raises(err, match=match):
        flavour([256, 512, 1024, 2048], 256, num_outs=5, **kwargs)


def test_none_and_zero_switch_a_stage_off():
    neck = DetFINEFPN(IN_CHANNELS, 16, num_outs=4, fine_kernel_sizes=(None, 2, 0),
                      fine_cfg=dict(head_dim=8))
    assert set(neck.fine_layers) == {'level1'}
    assert neck.fine_layers['level1'].kernel_size == 2


def test_eq3_top_down_wiring():
    """F_fused = FINE(F_low, F_high) + Up(F_high) with F_high the merged level above,
    written out by hand from the recorded FINE inputs/outputs."""
    import torch.nn.functional as F
    from fusion_necks.layers import iter_fusion_weight_maps, set_fusion_weight_recording
    torch.manual_seed(3)
    neck = DetFINEFPN(IN_CHANNELS, 16, num_outs=4,
                      fine_cfg=dict(head_dim=8, zeros_init=False)).eval()
    set_fusion_weight_recording(neck)
    feats = pyramid(40, 61)
    with torch.no_grad():
        outs = neck(feats)
        L = [conv(f) for conv, f in zip(neck.lateral_convs, feats)]
    maps = {}
    for module, name, t in iter_fusion_weight_maps(neck):
        maps.setdefault(module.split('.')[-1], {})[name] = t

    def up(x, ref):
        return F.interpolate(x, size=ref.shape[2:], mode='nearest')

    assert torch.equal(maps['level2']['low'], L[2]) and torch.equal(maps['level2']['high'], L[3])
    p4 = maps['level2']['aligned'] + up(L[3], L[2])
    assert torch.equal(maps['level1']['low'], L[1]) and torch.equal(maps['level1']['high'], p4)
    p3 = maps['level1']['aligned'] + up(p4, L[1])
    p2 = L[0] + up(p3, L[0])                      # plain addition at stride 4
    with torch.no_grad():
        expect = [neck.fpn_convs[i](p) for i, p in enumerate((p2, p3, p4, L[3]))]
    for o, e in zip(outs, expect):
        assert torch.equal(o, e)


def test_init_weights_keeps_fine_initialisation():
    """FPN's Xavier init_cfg (layer='Conv2d') re-initialises the convs but not FINE:
    projections keep their init, the DWConv sampler keeps its average-pooling start."""
    torch.manual_seed(0)
    neck = DetFINEFPN([256, 512, 1024, 2048], 256, 5, fine_cfg=dict(pooling='dwconv'))
    before = {k: v.clone() for k, v in neck.state_dict().items() if k.startswith('fine_')}
    lateral = neck.lateral_convs[0].conv.weight.clone()
    neck.init_weights()
    assert not torch.equal(lateral, neck.lateral_convs[0].conv.weight)   # Xavier applied
    for k, v in before.items():
        assert torch.equal(v, neck.state_dict()[k]), k
    assert torch.all(neck.fine_layers['level1'].low_sampler.weight == 1 / 16)
    assert all(torch.count_nonzero(f.attn.out_proj.weight) == 0       # zeros_init kept
               for f in neck.fine_layers.values())
