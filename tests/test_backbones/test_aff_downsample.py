"""Adaptive downsampling: selection rule, merge equation (Eq. 4), gradient paths."""
import math

import pytest
import torch

from fusion_necks.backbones import aff_downsample
from fusion_necks.backbones.aff_downsample import AFFAdaptiveDownsample
from fusion_necks.backbones.aff_stage import AFFStage


pytestmark = pytest.mark.usefixtures('single_thread')


def _irregular_tokens(seed, b=2, n=120, canvas=(24, 20)):
    """Irregular token sets: random subsets of the canvas grid (as after downsampling)."""
    g = torch.Generator().manual_seed(seed)
    h, w = canvas
    lin = torch.stack([torch.randperm(h * w, generator=g)[:n] for _ in range(b)])
    return torch.stack([lin % w, lin // w], -1), g


def _neighbourhoods(pos, canvas, cluster=4, nbhd=12):
    stage = AFFStage(dim=8, depth=0, num_heads=1, mlp_ratio=1.0, cluster_size=cluster,
                     nbhd_size=nbhd, drop_path=[], downsample=None)
    return stage.build_neighbourhoods(pos, canvas)


def reference_grid_prior(pos):
    """Paper Sec. 3.3.2: t = nearest-neighbour distance rounded up to a power of 2;
    g = 1 iff x and y are multiples of 2t. Brute-force distances."""
    p = pos.double()
    d = torch.cdist(p, p)
    d.diagonal(dim1=1, dim2=2).fill_(float('inf'))
    t = 2.0 ** torch.ceil(torch.log2(d.min(-1).values))
    two_t = (2 * t).long()
    return ((pos[..., 0] % two_t == 0) & (pos[..., 1] % two_t == 0)).float()


def test_grid_prior_hand_examples():
    ds = AFFAdaptiveDownsample(4, 4)
    # spacing 2 (t = 2) -> multiples of 4; (8,3) is sqrt(13) from (6,0) (t = 4) -> multiples of 8
    pos = torch.tensor([[[0, 0], [2, 0], [4, 0], [6, 0], [8, 3], [4, 2]]])
    g = ds.grid_prior_values(pos, on_grid=False)
    assert g.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]]
    # on the full grid (t = 1) every other pixel in x and y
    full = torch.tensor([[[0, 0], [1, 0], [0, 1], [1, 1], [2, 2], [2, 1]]])
    assert ds.grid_prior_values(full, on_grid=True).tolist() == [[1.0, 0, 0, 0, 1.0, 0]]
    assert torch.equal(ds.grid_prior_values(pos, False), reference_grid_prior(pos))


@pytest.mark.parametrize('grid_prior,reserve,alpha', [(True, True, 4.0), (False, True, 4.0),
                                                      (True, False, 8.0), (True, True, 0.0)])
def test_selection_is_topk_of_prior_plus_alpha_score(grid_prior, reserve, alpha):
    pos, g = _irregular_tokens(0)
    ds = AFFAdaptiveDownsample(4, 4, ds_rate=0.25, alpha=alpha, grid_prior=grid_prior,
                               reserve=reserve)
    score = torch.rand(2, pos.shape[1], generator=g)
    kept = ds.select(pos, score, stride=2, on_grid=False)
    assert kept.shape == (2, 30)  # int(120 * 0.25)
    prio = alpha * score + (reference_grid_prior(pos) if grid_prior else 0.0)
    reserved = (pos[..., 0] % 4 == 0) & (pos[..., 1] % 4 == 0)
    if reserve:
        prio = prio.masked_fill(reserved, float('inf'))
        assert reserved.sum(1).max() <= 30
        for b in range(2):  # every reserved token is kept
            assert set(reserved[b].nonzero().flatten().tolist()) <= set(kept[b].tolist())
    for b in range(2):
        expected = prio[b].argsort(descending=True)[:30]
        if alpha > 0:  # continuous scores: no ties
            assert set(kept[b].tolist()) == set(expected.tolist())
        else:  # ties among equal priorities: compare the multiset of priorities
            torch.testing.assert_close(prio[b, kept[b]].sort().values,
                                       prio[b, expected].sort().values)
    assert (kept[:, 1:] > kept[:, :-1]).all()  # ascending, no duplicates


def reference_merge(ds, feat, pos, nb, kept, score):
    """Eq. (4) written directly: f_c = U(LN(vec(sum_j s_j W(p_j - p_c) f_j^T)))."""
    b = feat.shape[0]
    rows = torch.arange(b).view(b, 1)
    nbr = nb.idx[rows, kept]  # B x N' x M
    rel = nb.rel[rows, kept]  # B x N' x M x F
    valid = torch.ones_like(nbr, dtype=torch.bool) if nb.mask is None else nb.mask[rows, kept]
    s = torch.stack([score[i, nbr[i]] for i in range(b)])  # B x N' x M
    f = torch.stack([feat[i, nbr[i]] for i in range(b)])  # B x N' x M x C
    w = ds.weight_net(rel) * (s * valid).unsqueeze(-1)
    merged = torch.einsum('bkmt,bkmc->bktc', w, f).flatten(2)
    return ds.proj(ds.norm(merged))


def test_merge_equals_reference_and_score_grad_only_through_weights():
    pos, g = _irregular_tokens(1, n=123)  # 123 % 4 != 0: padded last cluster
    canvas = (24, 20)
    nb = _neighbourhoods(pos, canvas)
    assert nb.mask is not None
    torch.manual_seed(0)
    ds = AFFAdaptiveDownsample(6, 10, ds_rate=0.25, alpha=4.0)
    feat = torch.randn(2, 123, 6, generator=g, requires_grad=True)
    res = ds(feat, nb.pos, nb.idx, nb.rel, nb.mask, stride=4, on_grid=False)
    assert res.feat.shape == (2, 30, 10) and res.pos.shape == (2, 30, 2)
    assert torch.equal(res.pos, torch.stack([nb.pos[i, res.kept_idx[i]] for i in range(2)]))
    gout = torch.randn(2, 30, 10, generator=g)
    params = [feat] + list(ds.parameters())
    grads = torch.autograd.grad((res.feat * gout).sum(), params)

    # reference: the score enters only the merge weights (same centres)
    score = ds.importance(feat).squeeze(-1).sigmoid()
    torch.testing.assert_close(res.score, score)
    ref = reference_merge(ds, feat, nb.pos, nb, res.kept_idx, score)
    ref_grads = torch.autograd.grad((ref * gout).sum(), params)
    torch.testing.assert_close(res.feat, ref, atol=1e-5, rtol=1e-5)
    names = ['feat'] + [n for n, _ in ds.named_parameters()]
    for name, a, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5, msg=name)
        assert a.abs().sum() > 0, name


def test_importance_layer_has_no_gradient_path_but_the_merge_weights(monkeypatch):
    """Detach the merge weights inside the module: the importance layer then receives no
    gradient at all (selection and features give it none), while the projection does."""
    pos, g = _irregular_tokens(2)
    nb = _neighbourhoods(pos, (24, 20))
    ds = AFFAdaptiveDownsample(6, 10)
    feat = torch.randn(2, 120, 6, generator=g, requires_grad=True)
    res = ds(feat, nb.pos, nb.idx, nb.rel, nb.mask, stride=4, on_grid=False)
    res.feat.square().sum().backward()
    assert ds.importance.weight.grad.abs().sum() > 0
    ds.zero_grad(set_to_none=True)

    orig = aff_downsample.weighted_neighbour_sum
    monkeypatch.setattr(aff_downsample, 'weighted_neighbour_sum',
                        lambda w, f, i, me: orig(w.detach(), f, i, me))
    res = ds(feat, nb.pos, nb.idx, nb.rel, nb.mask, stride=4, on_grid=False)
    res.feat.square().sum().backward()
    assert ds.importance.weight.grad is None and ds.importance.bias.grad is None
    assert ds.proj.weight.grad.abs().sum() > 0


def test_counts_and_reserved_survive_on_full_grid():
    h = w = 16
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).unsqueeze(0)
    for rate, keep in [(0.25, 64), (0.2, 51)]:
        ds = AFFAdaptiveDownsample(4, 4, ds_rate=rate)
        kept = ds.select(pos, torch.rand(1, h * w), stride=2, on_grid=True)
        assert kept.shape[1] == keep == math.floor(h * w * rate)
        kept_pos = pos[0, kept[0]]
        on4 = ((kept_pos % 4) == 0).all(-1).sum().item()
        assert on4 == (h // 4) * (w // 4)  # all 16 reserved tokens of the stride-4 grid


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='ds_rate'):
        AFFAdaptiveDownsample(4, 4, ds_rate=0.0)
    with pytest.raises(ValueError, match='alpha'):
        AFFAdaptiveDownsample(4, 4, alpha=-1.0)
