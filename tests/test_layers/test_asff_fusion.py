"""ASFF layers (plain PyTorch): shapes, equations, weights, gradients, parameter counts."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusion_necks.layers import (ASFFLevelFusion, ASFFSource, fusion_weight_maps,
                                 iter_fusion_weight_maps, set_fusion_weight_recording)
from fusion_necks.layers.conv_norm_act import ConvNormAct

# 800x1333 padded to 32 -> 800x1344; strides 8..128 (P3..P7)
PYRAMID_800 = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights *and* norm statistics, so an equation test sees every term."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return module


def build_levels(in_channels, level, **kw):
    return ASFFLevelFusion(in_channels, level, **kw)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize('n', [2, 3, 4, 5])
def test_exact_shapes_odd_sizes_800x1333(n):
    sizes = PYRAMID_800[-n:]   # always ends at P7 7x11 (next to P6 13x21)
    chans = [4 + i for i in range(n)]   # per-level channel counts
    feats = [torch.randn(1, c, *s) for c, s in zip(chans, sizes)]
    for level in range(n):
        m = build_levels(chans, level, out_channels=6,
                         upsample_mode='bilinear' if level % 2 else 'nearest').eval()
        with torch.no_grad():
            out = m(feats)
        assert out.shape == (1, 6) + sizes[level]


@pytest.mark.parametrize('finer_resize', ['pool', 'conv'])
def test_exact_shapes_other_finer_modes(finer_resize):
    feats = [torch.randn(1, 4, *s) for s in PYRAMID_800]
    for level in (3, 4):   # P6 / P7: three and four finer sources
        m = build_levels([4] * 5, level, finer_resize=finer_resize).eval()
        with torch.no_grad():
            assert m(feats).shape == (1, 4) + PYRAMID_800[level]


def test_finer_sources_match_the_pyramid_without_fallback(monkeypatch):
    """Pooling/stride-2 rounding must land exactly on mmdet's ceil(H/2) pyramid."""
    def no_interpolate(*args, **kwargs):
        raise AssertionError('finer source fell back to interpolation')
    for mode in ('official', 'pool', 'conv'):
        for step in range(1, 5):
            src = ASFFSource(3, 5, step, finer_resize=mode).eval()
            monkeypatch.setattr(F, 'interpolate', no_interpolate)
            out = src(torch.randn(1, 3, *PYRAMID_800[0]), PYRAMID_800[step])
            monkeypatch.undo()
            assert out.shape == (1, 5) + PYRAMID_800[step]


def test_finer_resize_structures():
    # official / pool: max-pool(s) then exactly one 3x3 stride-2 conv; conv: s convs
    off = ASFFSource(8, 16, 3, finer_resize='official')
    pool = ASFFSource(8, 16, 3, finer_resize='pool')
    conv = ASFFSource(8, 16, 3, finer_resize='conv')
    assert off.pool_steps == (2, 2) and pool.pool_steps == (4, )
    assert len(off.resize) == len(pool.resize) == 1 and len(conv.resize) == 3
    assert n_params(off.resize) == n_params(pool.resize) == 8 * 16 * 9 + 2 * 16
    assert n_params(conv.resize) == (8 * 16 + 2 * 16 * 16) * 9 + 3 * 2 * 16
    assert all(c.conv.stride == (2, 2) and c.conv.kernel_size == (3, 3) for c in conv.resize)
    # coarser: 1x1 always (paper) / only when widths differ (official)
    assert len(ASFFSource(16, 16, -1, coarser_conv='always').resize) == 1
    assert len(ASFFSource(16, 16, -1, coarser_conv='auto').resize) == 0
    assert len(ASFFSource(32, 16, -2, coarser_conv='auto').resize) == 1
    assert ASFFSource(16, 16, -1).resize[0].conv.kernel_size == (1, 1)
    assert len(ASFFSource(16, 16, 0).resize) == 0


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize('weight_mode', ['full', 'simple'])
def test_softmax_weights_sum_to_one_everywhere(weight_mode):
    sizes = PYRAMID_800[1:]
    feats = [torch.randn(2, 8, *s) * 3 for s in sizes]
    mods = nn.ModuleList(
        build_levels([8] * 4, lvl, weight_mode=weight_mode) for lvl in range(4))
    randomise_(mods).eval()
    assert set_fusion_weight_recording(mods, True) == 4
    for m in mods:
        m(feats)
    maps = list(iter_fusion_weight_maps(mods))
    assert len(maps) == 4
    for (name, map_name, w), size in zip(maps, sizes):
        assert map_name == 'weights'
        assert w.shape == (2, 4) + size
        assert torch.all(w >= 0) and torch.all(w <= 1)
        torch.testing.assert_close(w.sum(1), torch.ones(2, *size), rtol=0, atol=1e-6)
        assert w.std() > 0.01   # not a constant map
    set_fusion_weight_recording(mods, False)
    assert list(iter_fusion_weight_maps(mods)) == []


def test_recording_off_by_default_and_return_type_unchanged():
    m = build_levels([4, 4], 0).eval()
    out = m([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4)])
    assert isinstance(out, torch.Tensor) and fusion_weight_maps(m) == {}


def _cna(x, block: ConvNormAct, stride=1, pad=0, bn=True, slope=0.1):
    """conv -> BN(eval) -> LeakyReLU, written with functional ops."""
    y = F.conv2d(x, block.conv.weight, block.conv.bias, stride, pad)
    if bn:
        b = block.bn
        y = (y - b.running_mean[None, :, None, None]) / torch.sqrt(
            b.running_var[None, :, None, None] + b.eps)
        y = y * b.weight[None, :, None, None] + b.bias[None, :, None, None]
    return torch.where(y > 0, y, slope * y)


def test_one_level_against_independent_reference_full():
    """Target P5 of P3..P6 (fine_to_coarse): pool+conv, conv, identity, 1x1+nearest."""
    torch.manual_seed(0)
    c = 6
    sizes = [(20, 28), (10, 14), (5, 7), (3, 4)]
    xs = [torch.randn(2, c, *s) for s in sizes]
    m = randomise_(build_levels([c] * 4, 2, out_channels=5, compress_c=3)).eval()
    s = m.sources
    r0 = _cna(F.max_pool2d(xs[0], 3, 2, 1), s['0'].resize[0], stride=2, pad=1)
    r1 = _cna(xs[1], s['1'].resize[0], stride=2, pad=1)
    r2 = xs[2]
    r3 = _cna(xs[3], s['3'].resize[0])
    # nearest "upsampling" to 5x7 by explicit index arithmetic: src = floor(dst * in / out)
    iy = (torch.arange(5) * 3 / 5).floor().long()
    ix = (torch.arange(7) * 4 / 7).floor().long()
    r3 = r3[:, :, iy][:, :, :, ix]
    rs = [r0, r1, r2, r3]
    v = torch.cat([_cna(r, s[str(i)].weight) for i, r in enumerate(rs)], 1)
    lam = F.conv2d(v, m.weight_levels.weight, m.weight_levels.bias)
    e = torch.exp(lam - lam.max(1, keepdim=True).values)
    alpha = e / e.sum(1, keepdim=True)
    y = sum(alpha[:, i:i + 1] * rs[i] for i in range(4))
    ref = _cna(y, m.expand, pad=1)
    torch.testing.assert_close(m(xs), ref, rtol=1e-5, atol=1e-5)


def test_one_level_against_independent_reference_simple_gn_coarse_to_fine():
    """simple weights, GN, chained stride-2 convs, bilinear, coarse_to_fine order."""
    torch.manual_seed(1)
    chans = [16, 8, 4, 4]                    # stride 32, 16, 8, 4
    sizes = [(3, 5), (6, 9), (11, 17), (21, 33)]
    xs = [torch.randn(2, c, *s) for c, s in zip(chans, sizes)]
    m = randomise_(build_levels(
        chans, 1, order='coarse_to_fine', weight_mode='simple', finer_resize='conv',
        upsample_mode='bilinear', norm_cfg=dict(type='GN', num_groups=2),
        act_cfg=dict(type='ReLU'), expand_kernel=1)).eval()

    def gn_relu(x, block, stride=1, pad=0):
        y = F.conv2d(x, block.conv.weight, None, stride, pad)
        b, ch, h, w = y.shape
        g = y.reshape(b, 2, -1)
        g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True)
                                                         + block.gn.eps)
        y = g.reshape(b, ch, h, w) * block.gn.weight[None, :, None, None] \
            + block.gn.bias[None, :, None, None]
        return y.clamp(min=0)

    s = m.sources
    r0 = F.interpolate(gn_relu(xs[0], s['0'].resize[0]), size=(6, 9), mode='bilinear',
                       align_corners=False)
    r1 = xs[1]
    r2 = gn_relu(xs[2], s['2'].resize[0], 2, 1)
    r3 = gn_relu(gn_relu(xs[3], s['3'].resize[0], 2, 1), s['3'].resize[1], 2, 1)
    rs = [r0, r1, r2, r3]
    lam = torch.cat([F.conv2d(r, s[str(i)].weight.weight, s[str(i)].weight.bias)
                     for i, r in enumerate(rs)], 1)
    e = torch.exp(lam - lam.max(1, keepdim=True).values)
    alpha = e / e.sum(1, keepdim=True)
    y = sum(alpha[:, i:i + 1] * rs[i] for i in range(4))
    ref = gn_relu(y, m.expand)
    torch.testing.assert_close(m(xs), ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize('weight_mode', ['full', 'simple'])
def test_every_parameter_gets_a_gradient(weight_mode):
    torch.manual_seed(0)
    chans = [8, 12, 16, 8]
    sizes = [(16, 20), (8, 10), (4, 5), (2, 3)]
    xs = [torch.randn(2, c, *s) for c, s in zip(chans, sizes)]
    mods = nn.ModuleList(
        build_levels(chans, lvl, out_channels=8, weight_mode=weight_mode,
                     finer_resize=('official', 'pool', 'conv')[lvl % 3],
                     norm_cfg=dict(type='GN', num_groups=4)) for lvl in range(4)).train()
    loss = sum((m(xs) * torch.randn(2, 8, *sizes[i])).sum() for i, m in enumerate(mods))
    loss.backward()
    for name, p in mods.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------- parameter counts


def test_simple_variant_has_n_times_c_plus_n_weight_parameters():
    for level in range(3):
        m = build_levels([256] * 3, level, weight_mode='simple')
        assert m.weight_levels is None
        weight_params = sum(n_params(s.weight) for s in m.sources.values())
        assert weight_params == 3 * 256 + 3 == 771
        assert all(isinstance(s.weight, nn.Conv2d) and s.weight.bias is not None
                   for s in m.sources.values())


def test_full_weight_branch_parameter_count():
    # per source 1x1 C->c (no bias) + BN(c); logits conv (N*c -> N) with bias
    m = build_levels([256] * 3, 1, compress_c=16)
    weight_params = sum(n_params(s.weight) for s in m.sources.values())
    assert weight_params == 3 * (256 * 16 + 2 * 16)
    assert n_params(m.weight_levels) == 3 * 16 * 3 + 3
    assert m.weight_levels.bias is not None


def test_gn_adapts_to_narrow_weight_convs():
    # GN(32) on 64 channels: 2 channels per group, kept on the 8-channel weight convs
    m = build_levels([64] * 3, 0, compress_c=8, norm_cfg=dict(type='GN', num_groups=32))
    assert m.sources['1'].weight.gn.num_groups == 4
    assert m.sources['1'].resize[0].gn.num_groups == 32
    # GN(32) on 256 -> 8 per group -> GN(2) on compress_c 16; on 128 -> GN(4)
    for width, groups in ((256, 2), (128, 4)):
        m = build_levels([width] * 2, 0, norm_cfg=dict(type='GN', num_groups=32))
        assert m.sources['1'].weight.gn.num_groups == groups


def test_gn_weight_convs_run_on_1x1_maps():
    """P7 of a 128 px image is 1x1: GN with one channel per group would be undefined."""
    m = build_levels([256] * 3, 2, norm_cfg=dict(type='GN', num_groups=32)).eval()
    xs = [torch.randn(1, 256, 4, 4), torch.randn(1, 256, 2, 2), torch.randn(1, 256, 1, 1)]
    with torch.no_grad():
        assert m(xs).shape == (1, 256, 1, 1)


# --------------------------------------------------------------------------- limits / errors


def test_fusion_limit_and_labels():
    m = build_levels([4] * 5, 2, source_levels=[1, 2, 3], level_names=list('abcde')).eval()
    assert set(m.sources) == {'1', '2', '3'} and m.weight_levels.out_channels == 3
    assert m.fusion_source_labels == ['b', 'c', 'd'] and m.fusion_target_label == 'c'
    set_fusion_weight_recording(m)
    m([torch.randn(1, 4, 2**(5 - i), 2**(5 - i)) for i in range(5)])
    assert fusion_weight_maps(m)['weights'].shape == (1, 3, 8, 8)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[8], level=0), 'at least 2'),
    (dict(in_channels=[8, 8], level=2), 'level must be in'),
    (dict(in_channels=[8, 8, 8], level=0, source_levels=[0]), 'at least 2 sources'),
    (dict(in_channels=[8, 8, 8], level=0, source_levels=[0, 3]), 'source_levels'),
    (dict(in_channels=[8, 8], level=0, weight_mode='soft'), 'weight_mode'),
    (dict(in_channels=[8, 8], level=0, finer_resize='avg'), 'finer_resize'),
    (dict(in_channels=[8, 8], level=0, order='up'), 'order'),
    (dict(in_channels=[8, 8], level=0, compress_c=0), 'compress_c'),
    (dict(in_channels=[8, 8], level=0, out_channels=4, expand_kernel=None), 'out_channels'),
    (dict(in_channels=[8, 8], level=0, level_names=['a']), 'level_names'),
    (dict(in_channels=[8, 12], level=0, norm_cfg=dict(type='GN', num_groups=5)), 'num_groups'),
])
def test_bad_arguments_fail_at_construction(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        ASFFLevelFusion(**kwargs)


def test_bad_inputs_fail_with_a_clear_message():
    m = build_levels([4, 8], 0).eval()
    with pytest.raises(ValueError, match='expects 2 inputs'):
        m([torch.randn(1, 4, 4, 4)])
    with pytest.raises(ValueError, match=r'in_channels\[1\] is 8'):
        m([torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)])


def test_conv_norm_act_state_dict_matches_mmcv_conv_module():
    cnn = pytest.importorskip('mmcv.cnn')
    for norm in (dict(type='BN'), dict(type='GN', num_groups=2), None):
        ours = ConvNormAct(4, 8, 3, norm_cfg=norm, act_cfg=dict(type='LeakyReLU'))
        theirs = cnn.ConvModule(4, 8, 3, padding=1, norm_cfg=norm,
                                act_cfg=dict(type='LeakyReLU'))
        sd = {k: v.shape for k, v in ours.state_dict().items()}
        assert sd == {k: v.shape for k, v in theirs.state_dict().items()}
        theirs.load_state_dict(ours.state_dict())
        x = torch.randn(2, 4, 5, 6)
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x))


# --------------------------------------------------------------------------- fast max-pool


@pytest.mark.parametrize('hw', [(100, 168), (25, 42), (13, 21), (7, 11), (1, 1), (2, 3)])
def test_fast_max_pool_equals_the_official_pool(hw):
    """Inference path (separable strided maxima) == F.max_pool2d(x, 3, 2, 1) bit for bit,
    odd and even sizes; with autograd, the native op and its argmax gradient."""
    from fusion_necks.layers.asff_source import max_pool_3x3_s2
    x = torch.randn(2, 3, *hw)
    x[0, 0].fill_(-5.0)   # ties and negative values everywhere in one map
    ref = F.max_pool2d(x, 3, stride=2, padding=1)
    with torch.no_grad():
        out = max_pool_3x3_s2(x)
    assert out.shape == ref.shape == (2, 3, (hw[0] + 1) // 2, (hw[1] + 1) // 2)
    assert torch.equal(out, ref)
    xg = x.clone().requires_grad_(True)
    max_pool_3x3_s2(xg).sum().backward()
    xr = x.clone().requires_grad_(True)
    F.max_pool2d(xr, 3, stride=2, padding=1).sum().backward()
    assert torch.equal(xg.grad, xr.grad)


# --------------------------------------------------------------------------- uniform control


def test_uniform_control_is_full_minus_the_weight_branch():
    """``weight_mode='uniform'``: the same resize/expand convs as 'full' (same values under
    the same seed), no weight branch, and ``y = expand(mean_n resize_n(x_n))``."""
    torch.manual_seed(0)
    full = build_levels([8, 12, 16], 1, weight_mode='full')
    torch.manual_seed(0)
    uni = build_levels([8, 12, 16], 1, weight_mode='uniform')
    weight_params = n_params(full.weight_levels) + sum(n_params(s.weight)
                                                       for s in full.sources.values())
    assert n_params(uni) == n_params(full) - weight_params
    assert uni.weight_levels is None and all(s.weight is None for s in uni.sources.values())
    randomise_(uni).eval()
    xs = [torch.randn(2, 8, 16, 20), torch.randn(2, 12, 8, 10), torch.randn(2, 16, 4, 5)]
    set_fusion_weight_recording(uni, True)
    out = uni(xs)
    ref = uni.expand(sum(uni.sources[str(i)](xs[i], (8, 10)) for i in range(3)) / 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    (_, _, w), = list(iter_fusion_weight_maps(uni))
    torch.testing.assert_close(w, torch.full((2, 3, 8, 10), 1 / 3))
    uni.train()
    uni(xs).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in uni.parameters())
