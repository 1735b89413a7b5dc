"""The point-based pixel decoder: Shepard upsampling against brute force, gradients to the
learnable powers, the mmdet pixel-decoder contract on grids, registration, bad input and
bounded memory at 512x1024."""
import math

import pytest
import torch

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.ops.point_features import PointFeatures
from fusion_necks.ops.inverse_distance import inverse_distance_interpolate
from fusion_necks.layers.point import PointPixelDecoder, point_sine_encoding
from fusion_necks.decode_heads.point_msdeformattn_pixel_decoder import \
    PointMSDeformAttnPixelDecoder
from fusion_necks.layers.point.point_neighbour_search import build_neighbour_table

SMALL = dict(feat_channels=32, out_channels=16, num_heads=4, num_layers=2, ffn_channels=64)


def _grid(h, w):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def _aff_like_tokens(h, w, chans, b=2, seed=0, dtype=torch.float32):
    """Stride-4 full grid + random subsets of canvas points for the coarser levels."""
    g = torch.Generator().manual_seed(seed)
    grid = _grid(h, w)
    out = []
    for i, c in enumerate(chans):
        n = h * w // 4**i
        pos = torch.stack([grid[torch.randperm(h * w, generator=g)[:n]] for _ in range(b)])
        out.append(PointFeatures(torch.randn(b, n, c, generator=g, dtype=dtype), pos, (h, w),
                                 4 * 2**i))
    return out


def test_shepard_upsampling_equals_brute_force_forward_and_backward():
    """The FPN upsampling: res3 tokens -> every stride-4 token, 4 nearest, power 6."""
    g = torch.Generator().manual_seed(0)
    h, w = 9, 11
    grid = _grid(h, w)
    src_pos = torch.stack([grid[torch.randperm(h * w, generator=g)[:25]] for _ in range(2)])
    query = grid.unsqueeze(0).repeat(2, 1, 1)
    feat = torch.randn(2, 25, 3, generator=g, dtype=torch.float64, requires_grad=True)
    dec = PointPixelDecoder([4, 4, 4, 4], **SMALL)
    table = build_neighbour_table(src_pos, (h, w), 16)
    nbr = dec._interp_neighbours(query, src_pos, table)
    out = inverse_distance_interpolate(query, src_pos, feat, power=6.0, nbr_idx=nbr)
    # brute force
    d = torch.cdist(query.double(), src_pos.double())  # B x Nq x Ns
    ds, order = d.sort(-1)
    unique = ds[..., 3] < ds[..., 4] - 1e-9  # the 4 nearest are well defined
    assert unique.float().mean() > 0.5
    wts = torch.zeros_like(d)
    near = order[..., :4]
    inv = ds[..., :4]**-6.0
    wts.scatter_(-1, near, inv / inv.sum(-1, keepdim=True))
    on_token = ds[..., 0] == 0  # a query on a source token takes its feature
    wts[on_token] = torch.nn.functional.one_hot(order[..., 0][on_token], 25).double()
    feat_ref = feat.detach().clone().requires_grad_()
    ref = wts @ feat_ref
    assert on_token.any() and (~on_token & unique).any()
    # integer positions: the weights are computed in fp32
    torch.testing.assert_close(out[unique], ref[unique], rtol=1e-5, atol=1e-6)
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64) * unique.unsqueeze(-1)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(feat.grad, feat_ref.grad, rtol=1e-5, atol=1e-6)


def test_interpolation_gradients_reach_query_positions_and_power():
    g = torch.Generator().manual_seed(1)
    src = torch.rand(1, 30, 2, generator=g, dtype=torch.float64) * 10
    feat = torch.randn(1, 30, 2, generator=g, dtype=torch.float64)
    power = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    q = (torch.rand(1, 7, 2, generator=g, dtype=torch.float64) * 10).requires_grad_()
    out = inverse_distance_interpolate(q, src, feat, k=4, power=power)
    d = torch.cdist(q, src)
    dk, idx = d.topk(4, largest=False)
    wts = dk**-power
    ref = ((wts / wts.sum(-1, keepdim=True)).unsqueeze(-1) * feat[0][idx[0]]).sum(-2)
    torch.testing.assert_close(out, ref)
    go = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gq, gp = torch.autograd.grad(out, (q, power), go)
    rq, rp = torch.autograd.grad(ref, (q, power), go)
    torch.testing.assert_close(gq, rq)
    torch.testing.assert_close(gp, rp)
    assert gp.abs() > 0


def test_every_layer_power_gets_a_gradient_and_all_parameters_train():
    feats = _aff_like_tokens(16, 20, [8, 12, 16, 24], seed=2)
    dec = PointPixelDecoder([8, 12, 16, 24], **SMALL)
    assert [layer.self_attn.power.item() for layer in dec.layers] == [6.0, 6.0]
    # Deformable DETR zero-initialises the offset and weight layers, which blocks the
    # gradient to the position/level embeddings at step 0: take it one step further
    with torch.no_grad():
        for layer in dec.layers:
            layer.self_attn.sampling_offsets.weight.normal_(0, 0.1)
            layer.self_attn.attention_weights.weight.normal_(0, 0.1)
    mask, ms = dec(feats)
    assert mask.shape == (2, 16, 16, 20)
    assert [m.feat.shape for m in ms] == [(2, 5, 32), (2, 20, 32), (2, 80, 32)]
    assert all(torch.equal(m.pos, f.pos) for m, f in zip(ms, feats[:0:-1]))
    (mask.square().mean() + sum(m.feat.square().mean() for m in ms)).backward()
    for layer in dec.layers:
        assert layer.self_attn.power.grad is not None and layer.self_attn.power.grad != 0
    missing = [n for n, p in dec.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_position_encoding_on_the_full_grid_is_mmdets():
    from mmdet.models.layers import SinePositionalEncoding
    h, w = 6, 9
    pe = SinePositionalEncoding(num_feats=16, normalize=True)
    dense = pe(torch.zeros(1, h, w, dtype=torch.bool))  # 1 x 32 x h x w
    pos = _grid(h, w).unsqueeze(0)
    ours = point_sine_encoding(pos, (h, w), num_feats=16)
    torch.testing.assert_close(ours[0].T.reshape(32, h, w), dense[0])
    tmax = point_sine_encoding(pos, (h, w), num_feats=16, normalize_by='tensor_max')
    assert not torch.allclose(tmax, ours)


def _mmdet_decoder_cfg(chans, feat=32, out=16):
    from mmengine.config import ConfigDict
    return ConfigDict(
        in_channels=chans, strides=[4, 8, 16, 32], feat_channels=feat, out_channels=out,
        num_outs=3, norm_cfg=dict(type='GN', num_groups=8), act_cfg=dict(type='ReLU'),
        encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=feat, num_heads=4, num_levels=3, num_points=4,
                               im2col_step=64, dropout=0.0, batch_first=True, norm_cfg=None,
                               init_cfg=None),
            ffn_cfg=dict(embed_dims=feat, feedforward_channels=64, num_fcs=2, ffn_drop=0.0,
                         act_cfg=dict(type='ReLU', inplace=True))), init_cfg=None),
        positional_encoding=dict(num_feats=feat // 2, normalize=True), init_cfg=None)


@pytest.mark.parametrize('framework', ['mmdet', 'mmseg'])
def test_full_grid_outputs_match_mmdet_decoder_shapes_and_dtypes(framework):
    from importlib import import_module
    from mmdet.models.layers import MSDeformAttnPixelDecoder
    models = import_module(f'{framework}.registry').MODELS
    chans = [8, 16, 24, 32]
    cfg = _mmdet_decoder_cfg(chans)
    grid_dec = MSDeformAttnPixelDecoder(**cfg).eval()
    point_cfg = cfg.copy()
    point_cfg.update(type='PointMSDeformAttnPixelDecoder', norm_cfg=dict(type='LN'))
    point_dec = models.build(point_cfg).eval()
    assert isinstance(point_dec, PointMSDeformAttnPixelDecoder)
    point_dec.init_weights()
    assert point_dec.is_init
    g = torch.Generator().manual_seed(3)
    maps = [torch.randn(2, c, 24 // 2**i, 20 // 2**i + (i == 3), generator=g)
            for i, c in enumerate(chans)]  # 24x20, 12x10, 6x5, 3x3
    with torch.no_grad():
        gm, gs = grid_dec(maps)
        pm, ps = point_dec(maps)
        # the same grids given as point tokens at the cell centres
        tokens = []
        for i, m in enumerate(maps):
            f = 2**i
            hl, wl = m.shape[-2:]
            pos = _grid(hl, wl).unsqueeze(0).expand(2, -1, -1)
            pos = pos * f + (f - 1) // 2 if f == 1 else pos.float() * f + (f - 1) / 2
            tokens.append(PointFeatures(m.flatten(2).transpose(1, 2), pos, (24, 20), 4 * f))
        pm2, ps2 = point_dec(tokens)
    assert pm.shape == gm.shape == (2, 16, 24, 20) and pm.dtype == gm.dtype
    assert len(ps) == len(gs) == 3
    for p, q in zip(ps, gs):
        assert p.shape == q.shape and p.dtype == q.dtype
    # point tokens forming the same grids give the same outputs
    torch.testing.assert_close(pm2, pm)
    for p, p2 in zip(ps, ps2):
        torch.testing.assert_close(p2, p, atol=1e-5, rtol=1e-5)


def test_bad_configs_raise_at_construction():
    chans = [8, 16, 24, 32]
    cfg = _mmdet_decoder_cfg(chans)
    with pytest.raises(ValueError, match='norm_cfg'):
        PointMSDeformAttnPixelDecoder(**cfg)  # GN
    cfg['norm_cfg'] = dict(type='LN')
    bad = _mmdet_decoder_cfg(chans)
    bad['norm_cfg'] = dict(type='LN')
    bad['encoder']['layer_cfg']['self_attn_cfg']['embed_dims'] = 64
    with pytest.raises(ValueError, match='embed_dims'):
        PointMSDeformAttnPixelDecoder(**bad)
    with pytest.raises(ValueError, match='neighbour_search'):
        PointMSDeformAttnPixelDecoder(**cfg, neighbour_search='keops')
    with pytest.raises(ValueError, match='num_candidates'):
        PointMSDeformAttnPixelDecoder(**cfg, num_candidates=2)
    dec = PointMSDeformAttnPixelDecoder(**cfg)
    with pytest.raises(ValueError, match='expected 4 levels'):
        dec([torch.randn(1, 8, 8, 8)])
    with pytest.raises(ValueError, match='channels'):
        dec([torch.randn(1, c + 1, 8 // 2**i, 8 // 2**i) for i, c in enumerate(chans)])


def test_peak_memory_of_a_forward_at_512x1024_is_bounded():
    """One encoder layer at Cityscapes crop size (the peak does not grow with depth).

    Unchunked, the kNN table of the stride-8 level alone (32768 cells x 8192 tokens) is
    1 GiB, the 9-NN of the stride-4 tokens 4 GiB, and the gathered values of one
    attention layer (10752 queries x 8 heads x 48 samples x 32 channels) 528 MiB.
    """
    from fusion_necks.analysis.measure import PeakMemory
    feats = _aff_like_tokens(128, 256, [64, 128, 256, 512], b=1, seed=4)
    dec = PointPixelDecoder([64, 128, 256, 512], num_layers=1).eval()
    with torch.no_grad(), PeakMemory() as pm:
        mask, ms = dec(feats)
    assert mask.shape == (1, 256, 128, 256)
    assert [m.feat.shape[1] for m in ms] == [512, 2048, 8192]
    assert pm.peak_mib < 512, pm.peak_mib
    assert math.isfinite(mask.abs().sum().item())
