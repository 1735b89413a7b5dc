"""PointConv-style weighted neighbour aggregation (official clustenwf) vs a reference."""
import pytest
import torch

from fusion_necks.ops.weighted_aggregation import weighted_gather, weighted_neighbour_sum


pytestmark = pytest.mark.usefixtures('single_thread')


def test_matches_einsum_reference_forward_backward():
    g = torch.Generator().manual_seed(0)
    b, n, nf, m, t, c = 2, 33, 50, 7, 4, 6
    w = torch.randn(b, n, m, t, generator=g, requires_grad=True)
    f = torch.randn(b, nf, c, generator=g, requires_grad=True)
    idx = torch.randint(0, nf, (b, n, m), generator=g)
    gout = torch.randn(b, n, t, c, generator=g)
    out = weighted_neighbour_sum(w, f, idx, max_elements=100)  # many chunks
    gw, gf = torch.autograd.grad((out * gout).sum(), (w, f))
    f_nb = torch.stack([f[i, idx[i]] for i in range(b)])  # B x N x M x C
    ref = torch.einsum('bnmt,bnmc->bntc', w, f_nb)
    rgw, rgf = torch.autograd.grad((ref * gout).sum(), (w, f))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rgw, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gf, rgf, atol=1e-5, rtol=1e-5)


def test_weighted_gather_is_the_single_channel_case():
    g = torch.Generator().manual_seed(1)
    w = torch.rand(1, 4, 3, generator=g)
    f = torch.randn(1, 5, 2, generator=g)
    idx = torch.tensor([[[0, 1, 2], [4, 4, 0], [3, 2, 1], [1, 1, 1]]])
    out = weighted_gather(w, f, idx)
    ref = (w.unsqueeze(-1) * f[0, idx[0]].unsqueeze(0)).sum(2)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize('index_dtype', [torch.int64, torch.int32])
def test_single_channel_fused_path_matches_reference_with_gradients(index_dtype):
    # T = 1 runs through F.embedding_bag in the forward; the backward is the chunked one
    g = torch.Generator().manual_seed(2)
    b, n, nf, m, c = 2, 29, 40, 12, 5
    w = torch.randn(b, n, m, generator=g, requires_grad=True)
    f = torch.randn(b, nf, c, generator=g, requires_grad=True)
    idx = torch.randint(0, nf, (b, n, m), generator=g)
    gout = torch.randn(b, n, c, generator=g)
    out = weighted_gather(w, f, idx.to(index_dtype), max_elements=64)
    gw, gf = torch.autograd.grad((out * gout).sum(), (w, f))
    f_nb = torch.stack([f[i, idx[i]] for i in range(b)])  # B x N x M x C
    ref = torch.einsum('bnm,bnmc->bnc', w, f_nb)
    rgw, rgf = torch.autograd.grad((ref * gout).sum(), (w, f))
    assert out.shape == (b, n, c) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rgw, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gf, rgf, atol=1e-5, rtol=1e-5)


def test_fused_path_rejects_out_of_range_indices():
    w = torch.rand(1, 3, 2)
    f = torch.randn(1, 4, 2)
    with pytest.raises((IndexError, RuntimeError)):
        weighted_gather(w, f, torch.tensor([[[0, 1], [2, 3], [4, 0]]]))
