"""Point-based multi-scale deformable attention and its neighbour search, against
brute-force references written here (AFF Sec. 4.1)."""
import pytest
import torch

from fusion_necks.layers.point.point_deform_attn import (PointMSDeformAttn,
                                                            build_sampling_levels)
from fusion_necks.layers.point.point_neighbour_search import (build_neighbour_table,
                                                                nearest_tokens)

CANVAS = (12, 16)  # h, w


def _random_levels(sizes, g, dtype=torch.float64):
    """Float token positions inside the canvas (no distance ties)."""
    h, w = CANVAS
    return [torch.rand(2, n, 2, generator=g, dtype=dtype) * torch.tensor([w - 1, h - 1],
                                                                          dtype=dtype)
            for n in sizes]


def _brute_knn(loc, pos, k):
    d = (loc.unsqueeze(2) - pos.unsqueeze(1)).norm(dim=-1)
    return d.topk(k, dim=-1, largest=False)


def test_exact_search_equals_brute_force_inside_and_outside_the_canvas(monkeypatch):
    import fusion_necks.layers.point.point_neighbour_search as pns
    failures = []
    monkeypatch.setattr(pns, '_refine_failed', lambda q, failed, *a, f=pns._refine_failed: (
        failures.append(int(failed.sum())), f(q, failed, *a))[1])
    g = torch.Generator().manual_seed(0)
    pos = _random_levels([30], g, torch.float32)[0]
    pos[1, :10] = pos[1, :10] * 0.2  # a dense corner and a sparse rest in image 1
    table = build_neighbour_table(pos, CANVAS, num_candidates=8)
    h, w = CANVAS
    # locations well inside, near borders and far outside (the certificate fails there)
    loc = torch.rand(2, 500, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10.0
    idx = nearest_tokens(loc, table, k=4, mode='exact')
    got = (pos.gather(1, idx.view(2, -1, 1).expand(-1, -1, 2)).view(2, 500, 4, 2) -
           loc.unsqueeze(2)).norm(dim=-1)
    ref, _ = _brute_knn(loc, pos, 4)
    torch.testing.assert_close(got, ref)
    assert 0 < failures[-1] < 1000  # some certified, the rest searched by brute force
    # the returned squared distances are those of the returned indices, bitwise, for the
    # certified and the brute-force rows alike, in both modes
    for mode in ('exact', 'grid_table'):
        idx2, d2 = nearest_tokens(loc, table, k=4, mode=mode, return_sqdist=True)
        assert torch.equal(idx2, nearest_tokens(loc, table, k=4, mode=mode))
        nbr = pos.gather(1, idx2.view(2, -1, 1).expand(-1, -1, 2)).view(2, 500, 4, 2)
        assert torch.equal(d2, (nbr - loc.unsqueeze(2)).square().sum(-1))


@pytest.mark.parametrize('layout,bucketed', [('uniform', True), ('half_empty', True),
                                             ('float', True), ('clustered', False)])
def test_bucketed_neighbour_table_equals_brute_force(layout, bucketed, monkeypatch):
    import fusion_necks.layers.point.point_neighbour_search as pns
    calls = []
    monkeypatch.setattr(pns, '_refine_failed', lambda q, failed, *a, f=pns._refine_failed: (
        calls.append(int(failed.sum())), f(q, failed, *a))[1])
    g = torch.Generator().manual_seed(5)
    h, w = 64, 96
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
    if layout == 'uniform':  # AFF-like: a subset of the canvas points
        pos = torch.stack([grid[torch.randperm(h * w, generator=g)[:1536]] for _ in range(2)])
    elif layout == 'half_empty':  # no token in the right half: its cells need the fallback
        left = grid[grid[:, 0] < w // 2]
        pos = torch.stack([left[torch.randperm(len(left), generator=g)[:1536]] for _ in range(2)])
    elif layout == 'float':
        pos = torch.rand(2, 1536, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    else:  # all points of a corner and a few elsewhere: crowded buckets, brute force
        corner = grid[(grid[:, 0] < 12) & (grid[:, 1] < 12)]
        rest = grid[(grid[:, 0] >= 12) | (grid[:, 1] >= 12)]
        pos = torch.stack([torch.cat([corner, rest[torch.randperm(len(rest), generator=g)[:60]]])
                           for _ in range(2)])
    table = build_neighbour_table(pos, (h, w), num_candidates=16, brute_force_below=0)
    assert bool(calls) == bucketed  # the bucketed search ran (and checked its cells)
    if layout == 'half_empty':
        assert calls[0] > 0
    cells = grid.float().unsqueeze(0).expand(2, -1, -1)
    ref, _ = _brute_knn(cells, pos.float(), 16)
    torch.testing.assert_close(table.dist, ref)
    nbr = pos.float().gather(1, table.idx.view(2, -1, 1).expand(-1, -1, 2)).view(2, -1, 16, 2)
    torch.testing.assert_close((nbr - cells.unsqueeze(2)).norm(dim=-1), ref)
    torch.testing.assert_close(table.cand_pos, nbr)


def test_grid_table_mode_reads_the_rounded_clamped_cell():
    g = torch.Generator().manual_seed(1)
    pos = _random_levels([25], g, torch.float32)[0]
    table = build_neighbour_table(pos, CANVAS, num_candidates=4)
    loc = torch.tensor([[[3.4, 2.6], [-5.0, 30.0], [15.2, 0.49]]]).expand(2, -1, -1)
    idx = nearest_tokens(loc, table, k=4, mode='grid_table')
    cells = torch.tensor([[[3.0, 3.0], [0.0, 11.0], [15.0, 0.0]]]).expand(2, -1, -1)
    _, ref = _brute_knn(cells, pos, 4)
    assert torch.equal(idx.sort(-1).values, ref.sort(-1).values)


def _randomise(module, g):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == 'power':
                p.fill_(3.7)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


def _reference(attn, query, query_pos, ref_pos, value, level_pos, factors, mode):
    """Brute force: every sampling point against every token of its level."""
    b, nq, c = query.shape
    nh, nl, npt = attn.num_heads, attn.num_levels, attn.num_points
    q = query + query_pos
    off = (q @ attn.sampling_offsets.weight.T + attn.sampling_offsets.bias).view(
        b, nq, nh, nl, npt, 2)
    if attn.offset_units == 'level':
        off = off * torch.tensor(factors, dtype=off.dtype).view(1, 1, 1, nl, 1, 1)
    loc = ref_pos.view(b, nq, 1, 1, 1, 2) + off
    a = (q @ attn.attention_weights.weight.T + attn.attention_weights.bias).view(
        b, nq, nh, nl * npt).softmax(-1).view(b, nq, nh, nl, npt)
    v = (value @ attn.value_proj.weight.T + attn.value_proj.bias).view(b, -1, nh, c // nh)
    out = torch.zeros(b, nq, nh, c // nh, dtype=query.dtype)
    start = 0
    h, w = CANVAS
    bi = torch.arange(b).view(b, 1, 1, 1, 1)
    hi = torch.arange(nh).view(1, 1, nh, 1, 1)
    for lvl, pos in enumerate(level_pos):
        n = pos.shape[1]
        p = loc[:, :, :, lvl]  # B x Nq x H x P x 2
        if mode == 'exact':
            centre = p
        else:  # the official approximation: neighbours of the rounded, clamped cell
            centre = torch.stack([p[..., 0].round().clamp(0, w - 1),
                                  p[..., 1].round().clamp(0, h - 1)], -1)
        d_sel = (centre.unsqueeze(-2) - pos.view(b, 1, 1, 1, n, 2)).norm(dim=-1)
        idx = d_sel.topk(4, dim=-1, largest=False).indices  # B x Nq x H x P x 4
        nbr = pos[torch.arange(b).view(b, 1, 1, 1, 1), idx]  # B x Nq x H x P x 4 x 2
        d = (p.unsqueeze(-2) - nbr).norm(dim=-1)
        wts = d**(-attn.power)
        wts = wts / wts.sum(-1, keepdim=True)
        vals = v[:, start:start + n].permute(0, 2, 1, 3)[bi, hi, idx]  # ... x 4 x Ch
        out = out + (a[:, :, :, lvl, :, None, None] * wts.unsqueeze(-1) * vals).sum((3, 4))
        start += n
    return out.reshape(b, nq, c) @ attn.output_proj.weight.T + attn.output_proj.bias


@pytest.mark.parametrize('mode,units', [('exact', 'canvas'), ('exact', 'level'),
                                        ('grid_table', 'canvas')])
def test_point_deformable_attention_equals_brute_force_forward_and_backward(mode, units):
    g = torch.Generator().manual_seed(2)
    sizes, factors = [6, 15, 40], [4, 2, 1]
    attn = PointMSDeformAttn(embed_dims=8, num_heads=2, num_levels=3, num_points=3,
                             offset_units=units, neighbour_search=mode).double()
    _randomise(attn, g)
    level_pos = _random_levels(sizes, g)
    value_in = torch.randn(2, sum(sizes), 8, generator=g, dtype=torch.float64)
    ref_pos = torch.cat(level_pos, 1)  # every token is a query, as in the encoder
    query_pos = torch.randn(2, sum(sizes), 8, generator=g, dtype=torch.float64)
    levels = build_sampling_levels(level_pos, CANVAS, factors,
                                   num_candidates=16 if mode == 'exact' else 4)

    inputs = [value_in.clone().requires_grad_(), query_pos.clone().requires_grad_(),
              ref_pos.clone().requires_grad_()]
    out = attn(inputs[0], inputs[1], inputs[2], inputs[0], levels)
    ref_inputs = [t.clone().detach().requires_grad_() for t in (value_in, query_pos, ref_pos)]
    ref_attn = PointMSDeformAttn(embed_dims=8, num_heads=2, num_levels=3, num_points=3,
                                 offset_units=units, neighbour_search=mode).double()
    ref_attn.load_state_dict(attn.state_dict())
    ref = _reference(ref_attn, ref_inputs[0], ref_inputs[1], ref_inputs[2], ref_inputs[0],
                     level_pos, factors, mode)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)

    # inference path: weights from the search's own squared distances, same output
    with torch.no_grad():
        fast = attn(value_in, query_pos, ref_pos, value_in, levels)
    torch.testing.assert_close(fast, ref.detach(), rtol=1e-9, atol=1e-9)

    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    out.backward(grad)
    ref.backward(grad)
    for t, r in zip(inputs, ref_inputs):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-8, atol=1e-9)
    for (name, p), (_, pr) in zip(attn.named_parameters(), ref_attn.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, pr.grad, rtol=1e-8, atol=1e-9, msg=name)


def test_init_is_deformable_detr_and_bad_arguments_raise():
    attn = PointMSDeformAttn(embed_dims=16, num_heads=4, num_levels=3, num_points=2)
    assert attn.power.item() == 6.0 and attn.power.requires_grad
    bias = attn.sampling_offsets.bias.view(4, 3, 2, 2)
    torch.testing.assert_close(bias[0, :, 0], torch.tensor([[1.0, 0.0]] * 3))
    torch.testing.assert_close(bias[1, :, 1], torch.tensor([[0.0, 2.0]] * 3), atol=1e-6,
                               rtol=0)
    assert attn.attention_weights.weight.abs().sum() == 0
    fixed = PointMSDeformAttn(embed_dims=16, num_heads=4, learnable_power=False)
    assert 'power' not in dict(fixed.named_parameters())
    with pytest.raises(ValueError, match='neighbour_search'):
        PointMSDeformAttn(16, 4, neighbour_search='keops')
    with pytest.raises(ValueError, match='divisible'):
        PointMSDeformAttn(10, 4)
    with pytest.raises(ValueError, match='offset_units'):
        PointMSDeformAttn(16, 4, offset_units='normalised')
