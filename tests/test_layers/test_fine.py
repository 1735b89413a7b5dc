"""FINE (arXiv 2606.14005, Sections 4.2-4.4): equations against an independent reference,
invariants, odd sizes, gradients, ablation switches and bad input."""
import itertools
import math

import pytest
import torch

from fusion_necks.layers import FINE, fusion_weight_maps, set_fusion_weight_recording
from fusion_necks.layers.cross_level_attention import CrossLevelAttention
from fusion_necks.layers.token_sampling import TokenSampler

ATTENTIONS = ('aats', 'vanilla', 'window', 'area', 'linear', 'aats_linear')


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """These tensors are tiny: one intra-op thread avoids OpenMP oversubscription (which
    costs 50x on a shared 2-core machine) and keeps the module fast."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- reference
def ref_down(x, K, mode='avg', weight=None):
    """Eq. 4 by explicit windows: token (i, j) = op over pixels [iK, iK+K) x [jK, jK+K)
    clipped to the map (dwconv: zero-padded window, weighted sum)."""
    B, C, H, W = x.shape
    th, tw = math.ceil(H / K), math.ceil(W / K)
    out = torch.empty(B, C, th, tw, dtype=x.dtype)
    for i in range(th):
        for j in range(tw):
            win = x[:, :, i * K:(i + 1) * K, j * K:(j + 1) * K]
            if mode == 'avg':
                out[:, :, i, j] = win.mean(dim=(2, 3))
            elif mode == 'max':
                out[:, :, i, j] = win.amax(dim=(2, 3))
            else:
                full = torch.zeros(B, C, K, K, dtype=x.dtype)
                full[:, :, :win.shape[2], :win.shape[3]] = win
                out[:, :, i, j] = (full * weight[:, 0]).sum(dim=(2, 3))
    return out


def ref_attention(q_tok, kv_tok, attn, kernel='softmax'):
    """Eqs. 5-7 on token lists N x C (one image): per-head softmax(QK^T/sqrt d)V, concat, W_O."""
    def lin(layer, x):
        y = x @ layer.weight.T
        return y + layer.bias if layer.bias is not None else y
    Q, K, V = lin(attn.q_proj, q_tok), lin(attn.k_proj, kv_tok), lin(attn.v_proj, kv_tok)
    h = attn.num_heads
    d = Q.shape[1] // h
    heads = []
    for i in range(h):
        Qi, Ki, Vi = Q[:, i * d:(i + 1) * d], K[:, i * d:(i + 1) * d], V[:, i * d:(i + 1) * d]
        if kernel == 'softmax':
            heads.append(torch.softmax(Qi @ Ki.T / math.sqrt(d), dim=-1) @ Vi)
        else:  # SimA: l1 over tokens per channel, no softmax, then RMS per head
            Qn = Qi / Qi.abs().sum(0, keepdim=True)
            Kn = Ki / Ki.abs().sum(0, keepdim=True)
            o = (Qn @ Kn.T) @ Vi
            eps = torch.finfo(o.dtype).eps
            heads.append(o / torch.sqrt((o ** 2).mean(-1, keepdim=True) + eps))
    return lin(attn.out_proj, torch.cat(heads, dim=1))


def ref_fine(m: FINE, low, high):
    """FINE by the paper's equations, one image at a time, written independently."""
    B, C, H, W = low.shape
    out = torch.empty_like(low)
    f = m.ratio * m.kernel_size
    for b in range(B):
        lo, hi = low[b:b + 1], high[b:b + 1]
        if m.sampled:  # Eq. 4
            wl = m.low_sampler.weight
            wh = m.high_sampler.weight
            lo_t = ref_down(lo, f, m.pooling, wl) if f > 1 else lo
            hi_t = ref_down(hi, m.kernel_size, m.pooling, wh) if m.kernel_size > 1 else hi
        else:
            lo_t, hi_t = lo, hi
        th, tw = lo_t.shape[-2:]
        q = lo_t[0].reshape(C, -1).T
        kv = hi_t[0].reshape(C, -1).T
        kernel = 'linear' if m.attention in ('linear', 'aats_linear') else 'softmax'
        m_hat = ref_attention(q, kv, m.attn, kernel).T.reshape(C, th, tw)  # Eq. 7
        if m.sampled:  # Eq. 8: nearest, each pixel takes the token that contains it
            ys = torch.arange(H) // f
            xs = torch.arange(W) // f
            M = m_hat[:, ys][:, :, xs]
        else:
            M = m_hat
        Fl = lo[0]
        out[b] = {'residual': Fl * M + Fl, 'direct': Fl * M, 'none': M}[m.modulation]  # Eq. 9
    return out


def _randomise(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
    return m


# --------------------------------------------------------------------------- equations
@pytest.mark.parametrize('k,r,low_hw,high_hw,heads,pooling,modulation,bias', [
    (1, 2, (8, 12), (4, 6), 2, 'avg', 'residual', False),        # divisible
    (2, 2, (13, 21), (7, 11), 4, 'avg', 'residual', True),       # odd: partial windows
    (1, 2, (25, 42), (13, 21), 1, 'max', 'direct', False),
    (2, 2, (9, 7), (5, 4), 2, 'dwconv', 'none', True),
    (1, 4, (10, 9), (5, 5), 2, 'avg', 'residual', False),        # r = 4: grids differ
    (2, 1, (6, 5), (3, 3), 2, 'avg', 'residual', False),         # r = 1
])
def test_eqs_4_to_9_match_reference(k, r, low_hw, high_hw, heads, pooling, modulation, bias):
    torch.manual_seed(0)
    C = 8
    m = _randomise(FINE(C, kernel_size=k, ratio=r, num_heads=heads, pooling=pooling,
                        modulation=modulation, bias=bias)).double()
    low = torch.randn(2, C, *low_hw, dtype=torch.float64)
    high = torch.randn(2, C, *high_hw, dtype=torch.float64)
    out = m(low, high)
    assert out.shape == low.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, ref_fine(m, low, high), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('attention', ['vanilla', 'linear', 'aats_linear'])
def test_full_resolution_and_linear_variants_match_reference(attention):
    torch.manual_seed(1)
    m = _randomise(FINE(8, kernel_size=1, num_heads=2, attention=attention)).double()
    low = torch.randn(2, 8, 7, 9, dtype=torch.float64)
    high = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(m(low, high), ref_fine(m, low, high), rtol=1e-9, atol=1e-9)


def _ref_grouped(attn, low, high, groups):
    """Attention where each (query pixel set, key pixel set) group attends separately."""
    B, C, H, W = low.shape
    out = torch.zeros_like(low)
    for b in range(B):
        for (qy, qx), (ky, kx) in groups:
            q = low[b][:, qy[0]:qy[1], qx[0]:qx[1]]
            kv = high[b][:, ky[0]:ky[1], kx[0]:kx[1]]
            if q.numel() == 0:
                continue
            assert kv.numel() > 0
            o = ref_attention(q.reshape(C, -1).T, kv.reshape(C, -1).T, attn)
            out[b][:, qy[0]:qy[1], qx[0]:qx[1]] = o.T.reshape(C, *q.shape[1:])
    return out


def test_window_attention_matches_reference():
    """7x7 (here 3x3) high windows, each paired with the 2x larger low window covering the
    same image region; border windows are partial (sizes not divisible)."""
    torch.manual_seed(2)
    M, s = 3, 2
    attn = _randomise(CrossLevelAttention(8, 2, grouping='window', window_size=M,
                                          scale_ratio=s)).double()
    low = torch.randn(2, 8, 11, 13, dtype=torch.float64)
    high = torch.randn(2, 8, 6, 7, dtype=torch.float64)
    groups = []
    for i in range(math.ceil(6 / M)):
        for j in range(math.ceil(7 / M)):
            groups.append((((i * M * s, min((i + 1) * M * s, 11)),
                            (j * M * s, min((j + 1) * M * s, 13))),
                           ((i * M, min((i + 1) * M, 6)), (j * M, min((j + 1) * M, 7)))))
    torch.testing.assert_close(attn(low, high), _ref_grouped(attn, low, high, groups),
                               rtol=1e-9, atol=1e-9)


def test_area_attention_matches_reference():
    """A=4 horizontal strips covering the same image rows in both maps."""
    torch.manual_seed(3)
    attn = _randomise(CrossLevelAttention(8, 2, grouping='area', num_areas=4)).double()
    low = torch.randn(1, 8, 13, 6, dtype=torch.float64)
    high = torch.randn(1, 8, 7, 3, dtype=torch.float64)
    rows = math.ceil(7 / 4)  # 2 high rows per strip -> 4 strips
    groups = [(((a * rows * 2, min((a + 1) * rows * 2, 13)), (0, 6)),
               ((a * rows, min((a + 1) * rows, 7)), (0, 3))) for a in range(4)]
    torch.testing.assert_close(attn(low, high), _ref_grouped(attn, low, high, groups),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('mode', ['avg', 'max', 'dwconv'])
def test_token_sampler_partial_windows(mode):
    torch.manual_seed(4)
    s = TokenSampler(3, 4, mode)
    if s.weight is not None:
        # starts as average pooling, then random
        torch.testing.assert_close(s.weight, torch.full((3, 1, 4, 4), 1 / 16))
        _randomise(s)
    x = torch.randn(2, 3, 9, 6)
    y = s(x)
    assert y.shape == (2, 3, 3, 2)
    torch.testing.assert_close(y, ref_down(x, 4, mode, s.weight), rtol=1e-6, atol=1e-6)
    assert TokenSampler(3, 1, mode)(x) is x


# --------------------------------------------------------------------------- invariants
@pytest.mark.parametrize('attention', ATTENTIONS)
@pytest.mark.parametrize('low_hw,high_hw', [((16, 16), (8, 8)), ((25, 42), (13, 21))])
def test_zero_out_projection_gives_identity(attention, low_hw, high_hw):
    """W_O = 0 -> M = 0 -> Eq. 9 returns F_low exactly; direct/none return zeros."""
    m = FINE(32, kernel_size=2, attention=attention, bias=True)
    with torch.no_grad():
        m.attn.out_proj.weight.zero_()
        m.attn.out_proj.bias.zero_()
    low, high = torch.randn(2, 32, *low_hw), torch.randn(2, 32, *high_hw)
    assert torch.equal(m(low, high), low)
    m.modulation = 'direct'
    assert torch.equal(m(low, high), torch.zeros_like(low))
    m.modulation = 'none'
    assert torch.equal(m(low, high), torch.zeros_like(low))


@pytest.mark.parametrize('attention', ATTENTIONS)
def test_default_init_is_the_identity_with_residual_modulation(attention):
    """Default init: W_O = 0 with Eq. 9 (FINE starts as the identity); 'direct' and
    'none' keep a Xavier W_O (a zero M would switch F_low off)."""
    low, high = torch.randn(2, 16, 13, 11), torch.randn(2, 16, 7, 6)
    m = FINE(16, kernel_size=2, attention=attention, head_dim=8, bias=True, window_size=3)
    assert m.zeros_init and torch.count_nonzero(m.attn.out_proj.weight) == 0
    assert torch.count_nonzero(m.attn.q_proj.weight) == 16 * 16    # Q, K, V stay Xavier
    assert torch.equal(m(low, high), low)
    for modulation in ('direct', 'none'):
        m = FINE(16, kernel_size=2, attention=attention, head_dim=8, modulation=modulation)
        assert not m.zeros_init and m.attn.out_proj.weight.abs().min() > 0
        assert m(low, high).abs().sum() > 0
    m = FINE(16, head_dim=8, zeros_init=False)
    assert m.attn.out_proj.weight.abs().min() > 0 and not torch.equal(m(low, high), low)
    m = FINE(16, head_dim=8, modulation='direct', zeros_init=True)
    assert torch.equal(m(low, high), torch.zeros_like(low))


@pytest.mark.parametrize('attention', ATTENTIONS)
def test_default_init_trains_every_parameter(attention):
    """From W_O = 0, the first step moves W_O (only its gradient is non-zero), and from
    the second step on every parameter gets a gradient: nothing is stuck at init."""
    torch.manual_seed(5)
    m = FINE(16, kernel_size=2, attention=attention, pooling='dwconv', bias=True, head_dim=8,
             window_size=3)
    low, high = torch.randn(2, 16, 13, 11), torch.randn(2, 16, 7, 6)
    target = torch.randn(2, 16, 13, 11)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    ((m(low, high) - target) ** 2).mean().backward()
    grads = {n: p.grad.abs().sum().item() for n, p in m.named_parameters()}
    assert grads.pop('attn.out_proj.weight') > 0 and grads.pop('attn.out_proj.bias') > 0
    assert all(g == 0 for g in grads.values()), grads     # everything else is behind W_O
    opt.step()
    opt.zero_grad()
    ((m(low, high) - target) ** 2).mean().backward()
    for name, p in m.named_parameters():
        assert p.grad.abs().sum() > 0, name


def test_aats_with_r1_k1_is_vanilla():
    """Kernels of size 1 sample nothing: AATS(r=1, k=1) == dense pixel-to-pixel attention."""
    a = FINE(16, kernel_size=1, ratio=1, head_dim=4, zeros_init=False)
    v = FINE(16, attention='vanilla', head_dim=4)
    v.load_state_dict(a.state_dict())
    low, high = torch.randn(1, 16, 9, 11), torch.randn(1, 16, 5, 6)
    torch.testing.assert_close(a(low, high), v(low, high))


@pytest.mark.parametrize('low_hw,high_hw,k', [
    ((200, 334), (100, 167), 4),   # 800x1333 (unpadded) P2 with P3
    ((100, 167), (50, 84), 2),     # P3 with P4
    ((50, 84), (25, 42), 1),       # P4 with P5
    ((25, 42), (13, 21), 1),
    ((13, 21), (7, 11), 1),
    ((13, 21), (7, 11), 2),
    ((1, 1), (1, 1), 2),
    ((3, 1), (2, 1), 1),
])
def test_any_size_is_aligned(low_hw, high_hw, k):
    """Output keeps the low shape; and a change in one low pixel of the last (partial)
    token only changes the pixels of that token's r*k x r*k block (no misalignment)."""
    C = 16
    m = FINE(C, kernel_size=k, head_dim=8, zeros_init=False).eval()
    low, high = torch.randn(1, C, *low_hw), torch.randn(1, C, *high_hw)
    with torch.no_grad():
        out = m(low, high)
        assert out.shape == low.shape and torch.isfinite(out).all()
        H, W = low_hw
        f = 2 * k
        low2 = low.clone()
        low2[..., H - 1, W - 1] += 10.0
        changed = (m(low2, high) != out).any(dim=1)[0]
    block = torch.zeros(H, W, dtype=torch.bool)
    block[(H - 1) // f * f:, (W - 1) // f * f:] = True
    assert changed[H - 1, W - 1]
    assert not changed[~block].any()


@pytest.mark.parametrize('attention', ATTENTIONS)
def test_every_parameter_gets_a_gradient(attention):
    torch.manual_seed(5)
    m = FINE(16, kernel_size=2, attention=attention, pooling='dwconv', bias=True, head_dim=8,
             window_size=3, zeros_init=False)
    low, high = torch.randn(2, 16, 13, 11, requires_grad=True), torch.randn(2, 16, 7, 6)
    (m(low, high) ** 2).sum().backward()
    params = dict(m.named_parameters())
    if attention.startswith('aats'):
        assert 'low_sampler.weight' in params and 'high_sampler.weight' in params
    for name, p in params.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert low.grad.abs().sum() > 0


def test_parameter_count_is_four_c_by_c_projections():
    C = 256
    assert sum(p.numel() for p in FINE(C).parameters()) == 4 * C * C
    assert sum(p.numel() for p in FINE(C, bias=True).parameters()) == 4 * C * C + 4 * C
    # Table 6: depthwise samplers add C*K^2 per sampler with K > 1 (k=2, r=2: K = 4 and 2)
    assert sum(p.numel() for p in FINE(C, kernel_size=2, pooling='dwconv').parameters()) \
        == 4 * C * C + C * (16 + 4)
    assert sum(p.numel() for p in FINE(C, kernel_size=1, pooling='dwconv').parameters()) \
        == 4 * C * C + C * 4


def test_default_heads_and_shapes():
    m = FINE(256)
    assert m.num_heads == 16 and m.attn.head_dim == 16            # d = 16 (Table 4)
    assert FINE(256, num_heads=4).attn.head_dim == 64
    assert FINE(256, head_dim=8).num_heads == 32
    assert m.up_factor == 2 and FINE(256, kernel_size=2).up_factor == 4
    assert FINE(256, attention='vanilla').up_factor == 1


@pytest.mark.parametrize('channels,heads', [
    (256, 16), (128, 8), (48, 3), (16, 1),        # 16 divides C: d = 16, no log line
    (8, 1), (4, 1), (12, 1), (40, 2), (100, 5),   # nearest divisor of C to C / 16
    (24, 2),                                      # tie 1 vs 2 (both 0.5 from 1.5): more
    (250, 10), (255, 15),
])
def test_default_heads_rule(channels, heads, caplog):
    """Neither num_heads nor head_dim: d = 16 where it divides C, else the divisor of C
    nearest to C / 16 (ties to more heads), with a warning saying so."""
    # independent reference: all head counts h with h * d == C, by distance to C / 16
    cands = sorted((abs(h - channels / 16), -h) for h in range(1, channels + 1)
                   if channels % h == 0)
    assert -cands[0][1] == heads
    with caplog.at_level('WARNING', logger='fusion_necks'):
        m = FINE(channels)
    assert m.num_heads == heads and m.attn.head_dim * heads == channels
    logs = [r.getMessage() for r in caplog.records if r.name.startswith('fusion_necks')]
    if channels % 16 == 0:
        assert logs == []
    else:
        assert len(logs) == 1 and f'num_heads={heads}' in logs[0] and \
            f'C={channels}' in logs[0], logs
    # explicit settings are taken as given, and never logged
    caplog.clear()
    assert FINE(channels, num_heads=1).num_heads == 1
    assert not [r for r in caplog.records if r.name.startswith('fusion_necks')]


# --------------------------------------------------------------------------- switches
@pytest.mark.parametrize('attention,ratio,k,pooling,modulation,upsample_mode', [
    *[(a, 2, 1, 'avg', 'residual', 'nearest') for a in ATTENTIONS],
    *[('aats', r, k, 'avg', 'residual', 'nearest')
      for r, k in itertools.product((1, 2, 4), (1, 2))],
    ('aats', 2, 2, 'max', 'residual', 'nearest'),
    ('aats', 2, 2, 'dwconv', 'residual', 'nearest'),
    ('aats', 2, 2, 'avg', 'direct', 'nearest'),
    ('aats', 2, 2, 'avg', 'none', 'nearest'),
    ('aats', 2, 2, 'avg', 'residual', 'bilinear'),
    ('aats', 2, 2, 'avg', 'residual', 'bicubic'),
    ('aats_linear', 2, 2, 'avg', 'direct', 'bilinear'),   # the public code's reading
])
def test_ablation_switches_build_and_run(attention, ratio, k, pooling, modulation,
                                         upsample_mode):
    m = FINE(32, kernel_size=k, ratio=ratio, attention=attention, pooling=pooling,
             modulation=modulation, upsample_mode=upsample_mode, zeros_init=False)
    low, high = torch.randn(2, 32, 26, 42), torch.randn(2, 32, 13, 21)
    out = m(low, high)
    assert out.shape == low.shape and torch.isfinite(out).all()
    assert not torch.equal(out, low)


@pytest.mark.parametrize('heads', [1, 4, 8, 16, 32, 64, 128])
def test_table4_heads(heads):
    m = FINE(256, num_heads=heads)
    assert m.num_heads == heads and m.attn.head_dim == 256 // heads
    assert m(torch.randn(1, 256, 8, 8), torch.randn(1, 256, 4, 4)).shape == (1, 256, 8, 8)


def test_bilinear_upsampling_is_centred():
    """A spatially constant M_hat must give a constant M (no border shift/stretch)."""
    m = FINE(8, kernel_size=2, head_dim=4, upsample_mode='bilinear')
    m_hat = torch.ones(1, 8, 4, 5) * 3
    M = m.upsample(m_hat, 13, 18)
    assert M.shape == (1, 8, 13, 18) and torch.allclose(M, torch.full_like(M, 3.0))


def test_recording_for_figure_8():
    m = FINE(16, kernel_size=2, head_dim=8, zeros_init=False)
    low, high = torch.randn(1, 16, 12, 16), torch.randn(1, 16, 6, 8)
    out = m(low, high)
    assert fusion_weight_maps(m) == {}
    assert set_fusion_weight_recording(m, True) == 1
    out_rec = m(low, high)
    torch.testing.assert_close(out_rec, out)        # recording does not change the output
    maps = fusion_weight_maps(m)
    assert set(maps) == {'high', 'low', 'M', 'aligned'}
    assert torch.equal(maps['high'], high) and torch.equal(maps['low'], low)
    assert maps['M'].shape == low.shape
    torch.testing.assert_close(maps['aligned'], low * maps['M'] + low)
    set_fusion_weight_recording(m, False)
    assert fusion_weight_maps(m) == {} and not m._forward_hooks and not m.attn._forward_hooks


@pytest.mark.parametrize('kwargs', [dict(), dict(kernel_size=2), dict(attention='vanilla'),
                                    dict(upsample_mode='bilinear'), dict(modulation='direct')])
def test_recorded_m_is_the_modulation_of_every_path(kwargs):
    """The hooks rebuild M from the attention output; on the fast paths (lean
    block ops, broadcast over blocks) M is never materialised by the module."""
    from fusion_necks.layers import record_fusion_maps
    torch.manual_seed(0)
    m = FINE(16, head_dim=8, zeros_init=False, **kwargs).eval()
    low, high = torch.randn(2, 16, 12, 16), torch.randn(2, 16, 6, 8)
    with record_fusion_maps(m) as n:
        assert n == 1
        out = m(low, high)
        maps = fusion_weight_maps(m)
    assert torch.equal(maps['aligned'], out)
    assert maps['M'].shape == low.shape
    ref = low * maps['M'] + low if m.modulation == 'residual' else low * maps['M']
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    assert fusion_weight_maps(m) == {}


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs,match', [
    (dict(channels=256, high_channels=512), 'same channel count'),
    (dict(channels=250, head_dim=16), 'divisible by head_dim'),   # explicit d = 16
    (dict(channels=8, head_dim=16), r'head_dim must be one of \[1, 2, 4, 8\]'),
    (dict(channels=256, num_heads=3), 'divisible by num_heads'),
    (dict(channels=256, num_heads=8, head_dim=16), 'must equal'),
    (dict(channels=256, attention='dense'), 'attention must be one of'),
    (dict(channels=256, pooling='median'), 'pooling must be one of'),
    (dict(channels=256, modulation='sigmoid'), 'modulation must be one of'),
    (dict(channels=256, upsample_mode='area'), 'upsample_mode must be one of'),
    (dict(channels=256, ratio=0), 'ratio must be an int'),
    (dict(channels=256, kernel_size=1.5), 'kernel_size must be an int'),
    (dict(channels=256, attention='window', window_size=0), 'window_size'),
    (dict(channels=256, zeros_init=1), 'zeros_init must be True, False or None'),
])
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FINE(**kwargs)


def test_bad_forward_input_raises():
    m = FINE(16, head_dim=8)
    with pytest.raises(ValueError, match='same B'):
        m(torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4))
    with pytest.raises(ValueError, match='4D'):
        m(torch.randn(16, 8, 8), torch.randn(16, 4, 4))
