"""PointConv over the k nearest tokens and the full-grid kNN, against brute force."""
import pytest
import torch
import torch.nn.functional as F

from fusion_necks.ops.knn import knn
from fusion_necks.layers.point.point_conv import PointConv, grid_self_knn, is_full_grid


def _grid(h, w):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


@pytest.mark.parametrize('h,w,k', [(3, 3, 9), (5, 7, 9), (3, 40, 9), (9, 6, 4), (8, 8, 16),
                                   (6, 5, 1)])
def test_grid_knn_equals_brute_force(h, w, k):
    g = torch.Generator().manual_seed(h * w + k)
    perm = torch.stack([torch.randperm(h * w, generator=g) for _ in range(2)])
    pos = _grid(h, w)[perm]  # two images, tokens in different orders
    assert is_full_grid(pos, (h, w)) and not is_full_grid(pos[:, 1:], (h, w))
    idx = grid_self_knn(pos, (h, w), k)
    d = (torch.gather(pos, 1, idx.view(2, -1, 1).expand(-1, -1, 2)).view(2, -1, k, 2) -
         pos.unsqueeze(2)).float().norm(dim=-1)
    ref, _ = knn(pos, pos, k)
    torch.testing.assert_close(d, ref)
    assert (idx[..., 0] == torch.arange(h * w)).all()  # self first
    if k == 9 and h > 2 and w > 2:
        # an interior token's 9 nearest tokens are its 3x3 patch
        inner = ((pos[0, :, 0] == 1) & (pos[0, :, 1] == 1)).nonzero().item()
        patch = pos[0, idx[0, inner]]
        assert {tuple(p.tolist()) for p in patch} == {(x, y) for x in range(3) for y in range(3)}


def _reference(conv, feat, pos, k):
    """Brute force: k nearest by full distance matrix, Eq. 4 without the score."""
    d = torch.cdist(pos.double(), pos.double())
    idx = d.topk(k, dim=-1, largest=False).indices
    nbr = pos[torch.arange(pos.shape[0]).view(-1, 1, 1), idx]
    delta = (nbr - pos.unsqueeze(2)).to(feat.dtype)
    if conv.rel_pos_sign == 'centre_minus_neighbour':
        delta = -delta
    dx, dy = delta.unbind(-1)
    dist = delta.norm(dim=-1)
    safe = torch.where(dist > 0, dist, torch.ones_like(dist))
    cos = torch.where(dist > 0, dx / safe, torch.zeros_like(dx))
    sin = torch.where(dist > 0, dy / safe, torch.zeros_like(dy))
    rel = torch.stack([dx, dy, dist, cos, sin] if conv.rel_pos_order == 'paper' else
                      [dx, dy, dist, sin, cos], -1)
    lin, ln = conv.weight_net[0], conv.weight_net[1]
    wts = F.gelu(F.layer_norm(rel @ lin.weight.T + lin.bias, (conv.mid_channels, ),
                              ln.weight, ln.bias))  # B x N x k x T
    f_nb = feat[torch.arange(feat.shape[0]).view(-1, 1, 1), idx]  # B x N x k x C
    agg = torch.einsum('bnkt,bnkc->bntc', wts, f_nb).flatten(2)
    if not isinstance(conv.norm, torch.nn.Identity):
        agg = F.layer_norm(agg, agg.shape[-1:], conv.norm.weight, conv.norm.bias)
    return agg @ conv.linear.weight.T + conv.linear.bias


@pytest.mark.parametrize('grid,official', [(True, False), (False, False), (False, True)])
def test_pointconv_equals_brute_force_forward_and_backward(grid, official):
    g = torch.Generator().manual_seed(3)
    if grid:
        h, w = 5, 6
        pos = _grid(h, w)[torch.randperm(h * w, generator=g)].unsqueeze(0).repeat(2, 1, 1)
        canvas = (h, w)
    else:  # distinct random points: no distance ties
        pos = torch.rand(2, 23, 2, generator=g, dtype=torch.float64) * 10
        canvas = None
    kw = dict(rel_pos_order='official', rel_pos_sign='centre_minus_neighbour',
              aggregation_norm=True) if official else {}
    conv = PointConv(6, 5, num_neighbours=9, **kw).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    feat = torch.randn(2, pos.shape[1], 6, generator=g, dtype=torch.float64, requires_grad=True)
    out = conv(feat, pos, canvas)
    feat_ref = feat.detach().clone().requires_grad_()
    ref_conv = PointConv(6, 5, num_neighbours=9, **kw).double()
    ref_conv.load_state_dict(conv.state_dict())
    ref = _reference(ref_conv, feat_ref, pos, 9)
    # on grids the 9th nearest can tie with the 10th (next to corners): compare the
    # tokens whose neighbourhood is unique (all of them for random points)
    dist = torch.cdist(pos.double(), pos.double()).sort(-1).values
    unique = dist[..., 8] < dist[..., 9] - 1e-9  # B x N
    assert unique.float().mean() > (0.5 if grid else 0.99)
    torch.testing.assert_close(out[unique], ref[unique])
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64) * unique.unsqueeze(-1)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(feat.grad, feat_ref.grad)
    for (name, p), (_, pr) in zip(conv.named_parameters(), ref_conv.named_parameters()):
        assert p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, pr.grad, msg=name)


def test_sign_conventions_are_the_same_model_up_to_negated_columns():
    g = torch.Generator().manual_seed(4)
    pos = torch.rand(1, 20, 2, generator=g) * 8
    feat = torch.randn(1, 20, 4, generator=g)
    a = PointConv(4, 3)
    b = PointConv(4, 3, rel_pos_sign='centre_minus_neighbour')
    b.load_state_dict(a.state_dict())
    with torch.no_grad():  # [dx, dy, d, cos, sin]: all but d flip sign
        b.weight_net[0].weight[:, [0, 1, 3, 4]] *= -1
    torch.testing.assert_close(a(feat, pos), b(feat, pos))
    with pytest.raises(ValueError, match='rel_pos_sign'):
        PointConv(4, 3, rel_pos_sign='up')
