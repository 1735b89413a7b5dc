"""Neighbourhood attention == dense attention masked to the neighbours (+ blank token)."""
import pytest
import torch

from fusion_necks.ops.nbhd_attention import nbhd_attention


pytestmark = pytest.mark.usefixtures('single_thread')


def _distinct_neighbours(b, n, m, g):
    """B x N x M distinct indices per query (vectorised sampling without replacement)."""
    return torch.rand(b, n, n, generator=g).argsort(-1)[..., :m]


def dense_reference(q, k, v, idx, bias, mask, blank_k, blank_v):
    """Full N x N attention; logits of non-neighbours are -inf, the neighbour bias is
    scattered into a dense bias matrix, the blank logit is an extra column."""
    b, n, h, d = q.shape
    m = idx.shape[-1]
    valid = torch.ones(b, n, m, dtype=torch.bool) if mask is None else mask
    allowed = torch.zeros(b, n, n, dtype=torch.bool)
    dense_bias = torch.zeros(b, n, n, h, dtype=q.dtype)
    bi = torch.arange(b).view(b, 1, 1).expand(b, n, m)[valid]
    qi = torch.arange(n).view(1, n, 1).expand(b, n, m)[valid]
    kj = idx[valid]
    allowed[bi, qi, kj] = True
    dense_bias = dense_bias.index_put((bi, qi, kj), bias[valid])
    logits = torch.einsum('bihd,bjhd->bhij', q, k) + dense_bias.permute(0, 3, 1, 2)
    logits = logits.masked_fill(~allowed.unsqueeze(1), float('-inf'))
    if blank_k is not None:
        blank = torch.einsum('bihd,hd->bhi', q, blank_k).unsqueeze(-1)
        logits = torch.cat([logits, blank], -1)
    p = logits.softmax(-1)
    out = torch.einsum('bhij,bjhd->bihd', p[..., :n], v)
    if blank_v is not None:
        out = out + p[..., n].permute(0, 2, 1).unsqueeze(-1) * blank_v
    return out


@pytest.mark.parametrize('blank', [True, False])
@pytest.mark.parametrize('with_mask', [True, False])
def test_matches_dense_reference_forward_backward(blank, with_mask):
    g = torch.Generator().manual_seed(0)
    b, n, h, d, m = 2, 40, 3, 8, 12
    q = (torch.randn(b, n, h, d, generator=g) * 0.5).requires_grad_()
    k = torch.randn(b, n, h, d, generator=g).requires_grad_()
    v = torch.randn(b, n, h, d, generator=g).requires_grad_()
    bias = torch.randn(b, n, m, h, generator=g).requires_grad_()
    idx = _distinct_neighbours(b, n, m, g)
    mask = None
    if with_mask:  # official padding: last slots invalid and pointing at token 0
        mask = torch.ones(b, n, m, dtype=torch.bool)
        mask[:, ::3, -4:] = False
        idx = idx.masked_fill(~mask, 0)
    bk = torch.randn(h, d, generator=g).requires_grad_() if blank else None
    bv = torch.randn(h, d, generator=g).requires_grad_() if blank else None
    params = [t for t in (q, k, v, bias, bk, bv) if t is not None]
    gout = torch.randn(b, n, h, d, generator=g)

    out = nbhd_attention(q, k, v, idx, bias, mask, bk, bv, max_elements=500)  # several chunks
    grads = torch.autograd.grad((out * gout).sum(), params)
    ref = dense_reference(q, k, v, idx, bias, mask, bk, bv)
    ref_grads = torch.autograd.grad((ref * gout).sum(), params)

    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for name, a, r in zip('q k v bias blank_k blank_v'.split(), grads, ref_grads):
        if name == 'bias' and mask is not None:  # padded slots carry no gradient
            assert (a[~mask] == 0).all()
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5, msg=name)


def test_blank_token_takes_attention_from_irrelevant_neighbours():
    """With keys orthogonal to the query and a blank key aligned with it, the output is
    (almost) the blank value: the blank token lets a query attend to 'nothing'."""
    h, d = 1, 4
    q = torch.tensor([[[[10.0, 0, 0, 0]]]])  # B=1, N=1
    k = torch.tensor([[[[0.0, 1, 0, 0]], [[0.0, 0, 1, 0]]]])  # 2 tokens
    v = torch.ones(1, 2, h, d)
    idx = torch.tensor([[[0, 1]]])
    blank_k = torch.tensor([[1.0, 0, 0, 0]])
    blank_v = torch.full((h, d), -3.0)
    out = nbhd_attention(q, k, v, idx, None, None, blank_k, blank_v)
    torch.testing.assert_close(out, blank_v.view(1, 1, h, d), atol=1e-3, rtol=0)


def test_gradcheck_double_with_strided_inputs():
    """Exact double-precision gradients, with q/k/v being views of one projection and the
    bias expanded over the batch (how the backbone calls it)."""
    g = torch.Generator().manual_seed(1)
    b, n, h, d, m = 2, 9, 2, 3, 4
    qkv = torch.randn(b, n, 3, h, d, generator=g, dtype=torch.double, requires_grad=True)
    bias1 = torch.randn(1, n, m, h, generator=g, dtype=torch.double, requires_grad=True)
    bk = torch.randn(h, d, generator=g, dtype=torch.double, requires_grad=True)
    bv = torch.randn(h, d, generator=g, dtype=torch.double, requires_grad=True)
    idx = torch.randint(0, n, (b, n, m), generator=g)
    mask = torch.rand(b, n, m, generator=g) > 0.3
    mask[..., 0] = True

    def fn(qkv, bias1, bk, bv):
        q, k, v = qkv.unbind(2)
        bias = bias1.expand(b, -1, -1, -1)
        return nbhd_attention(q, k, v, idx, bias, mask, bk, bv, max_elements=30)

    assert torch.autograd.gradcheck(fn, (qkv, bias1, bk, bv))


def test_rejects_bad_shapes():
    q = torch.randn(1, 5, 2, 4)
    idx = torch.zeros(1, 5, 3, dtype=torch.long)
    with pytest.raises(ValueError, match='bias'):
        nbhd_attention(q, q, q, idx, bias=torch.zeros(1, 5, 3, 3))
    with pytest.raises(ValueError, match='together'):
        nbhd_attention(q, q, q, idx, blank_k=torch.zeros(2, 4))


# --------------------------------------------------------------------------- clusters
def _stage_neighbourhoods(pos, canvas, rules='exact'):
    from fusion_necks.backbones.aff_stage import AFFStage
    stage = AFFStage(dim=32, depth=1, num_heads=2, mlp_ratio=2.0, cluster_size=8,
                     nbhd_size=48, drop_path=[0.0], rules=rules)
    return stage.build_neighbourhoods(pos, canvas)


def _grid(h, w, stride=4):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], -1)[None] * stride


@pytest.mark.parametrize('case', ['grid-batch-shared', 'irregular-short-cluster',
                                  'official-rules-mask-100', 'no-blank-no-bias', 'chunked'])
def test_cluster_path_equals_the_general_op(case):
    """AutoFocusFormer's neighbourhoods (whole clusters, tokens in clustering order): the
    per-cluster gather gives the general op's output, also with padded slots (a short
    last cluster, both masking rules), no blank token, no bias, and small chunks."""
    g = torch.Generator().manual_seed(3)
    rules, mask_value, blank, with_bias, max_el = 'exact', None, True, True, 1 << 22
    if case == 'grid-batch-shared':
        pos, canvas, b = _grid(24, 40), (96, 160), 2
    else:
        pos, canvas, b = torch.randint(0, 120, (2, 1003, 2), generator=g), (120, 120), 2
    if case == 'official-rules-mask-100':
        rules, mask_value = 'official', -100.0
    if case == 'no-blank-no-bias':
        blank, with_bias = False, False
    if case == 'chunked':
        max_el = 5000
    nb = _stage_neighbourhoods(pos, canvas, rules)
    n, m_slots = nb.idx.shape[1:]
    assert case == 'grid-batch-shared' or nb.mask is not None   # padded slots exist
    h, d = 2, 16
    q, k, v = (torch.randn(b, n, h, d, generator=g) for _ in range(3))
    # a large logit on token 0, which the padded slots point at (the -100 rule matters)
    k[:, 0] *= 20
    bias = torch.randn(nb.rel.shape[0], n, m_slots, h, generator=g).expand(b, -1, -1, -1) \
        if with_bias else None
    bk, bv = (torch.randn(h, d, generator=g), torch.randn(h, d, generator=g)) if blank \
        else (None, None)
    idx = nb.idx.expand(b, -1, -1)
    mask = None if nb.mask is None else nb.mask.expand(b, -1, -1)
    with torch.no_grad():
        ref = nbhd_attention(q, k, v, idx, bias, mask, bk, bv, max_elements=max_el,
                             mask_value=mask_value)
        out = nbhd_attention(q, k, v, idx, bias, mask, bk, bv, max_elements=max_el,
                             mask_value=mask_value, cluster_size=8)
    assert out.shape == ref.shape == (b, n, h, d)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_cluster_path_is_inference_only_and_checks_its_input():
    """With gradients the general op runs (its backward); keys must be the queries."""
    from fusion_necks.ops.nbhd_attention import cluster_nbhd_attention
    nb = _stage_neighbourhoods(_grid(8, 16), (32, 64))
    n, m_slots = nb.idx.shape[1:]
    q = torch.randn(1, n, 2, 8, requires_grad=True)
    k, v = torch.randn(1, n, 2, 8), torch.randn(1, n, 2, 8)
    out = nbhd_attention(q, k, v, nb.idx, cluster_size=8)
    out.sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='keys = queries'):
        cluster_nbhd_attention(q.detach(), k[:, :-1], v[:, :-1], nb.idx, 8)
