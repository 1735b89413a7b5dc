"""Block pooling / block modulation with lean backward passes (FINE's AATS path):
forward and gradients equal to the generic ops' (autograd through them) to float rounding."""
import pytest
import torch
import torch.nn.functional as F

from fusion_necks.layers.block_ops import block_avg_pool, block_residual_modulate
from fusion_necks.layers.fine import FINE


def _generic(low, high_tokens_fn, f):
    """avg_pool2d + broadcast addcmul, PyTorch's own backward (the previous FINE path)."""
    b, c, h, w = low.shape
    m_hat = high_tokens_fn(F.avg_pool2d(low, f, f, ceil_mode=True))
    low6 = low.reshape(b, c, h // f, f, w // f, f)
    return torch.addcmul(low6, low6, m_hat.reshape(b, c, h // f, 1, w // f, 1)).reshape(b, c, h, w)


def _lean(low, high_tokens_fn, f):
    tokens, alias = block_avg_pool(low, f)
    return block_residual_modulate(alias, high_tokens_fn(tokens), f)


@pytest.mark.parametrize('f', [2, 4])
def test_gradcheck_float64(f):
    g = torch.Generator().manual_seed(0)
    low = torch.randn(2, 3, 2 * f, 3 * f, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(3, 3, dtype=torch.float64, generator=g)
    mix = lambda t: torch.einsum('oc,bchw->bohw', w, t).tanh()  # noqa: E731 (m depends on low)
    assert torch.autograd.gradcheck(lambda x: _lean(x, mix, f), (low,))
    assert torch.autograd.gradcheck(lambda x: block_avg_pool(x, f)[0], (low,))


def test_same_numbers_as_the_generic_ops():
    g = torch.Generator().manual_seed(1)
    low = torch.randn(2, 8, 12, 20, generator=g, requires_grad=True)
    w = torch.randn(8, 8, generator=g, requires_grad=True)
    mix = lambda t: torch.einsum('oc,bchw->bohw', w, t)  # noqa: E731
    up = torch.randn(2, 8, 12, 20, generator=g)
    outs, grads = [], []
    for fn in (_generic, _lean):
        low.grad = w.grad = None
        out = fn(low, mix, 4)
        out.backward(up)
        outs.append(out.detach())
        grads.append((low.grad.clone(), w.grad.clone()))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-6, atol=1e-6)  # summation order
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_alias_unused_and_pooled_unused():
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    block_avg_pool(x, 2)[0].sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.25))
    x.grad = None
    block_avg_pool(x, 2)[1].sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match='divisible by the block size 4'):
        block_avg_pool(torch.zeros(1, 2, 6, 8), 4)
    with pytest.raises(ValueError, match='m_hat must be 1 x 2 x 2 x 2'):
        block_residual_modulate(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 3, 2), 4)


@pytest.mark.parametrize('k', [1, 2])
def test_fine_lean_path_matches_the_generic_path(k):
    """FINE at sizes that divide takes the lean path; with a size that does not (and so
    the generic path) it gives the numbers of the same computation."""
    torch.manual_seed(0)
    fine = FINE(32, kernel_size=k)
    torch.nn.init.xavier_uniform_(fine.attn.out_proj.weight)
    f = 2 * k
    low = torch.randn(2, 32, 6 * f, 5 * f, requires_grad=True)
    high = torch.randn(2, 32, 3 * f, 5 * f // 2 if f % 2 == 0 else 3, requires_grad=True)
    assert fine._lean_path(*low.shape[-2:])
    up = torch.randn_like(low)
    out = fine(low, high)
    out.backward(up)
    lean = [out.detach(), low.grad.clone(), high.grad.clone()] + [
        p.grad.clone() for p in fine.parameters()]
    fine.zero_grad()
    low.grad = high.grad = None
    ref = _generic(low, lambda t: fine.attn(t, fine.high_sampler(high) if k == 1 else
                                            F.avg_pool2d(high, k, k, ceil_mode=True)), f)
    ref.backward(up)
    generic = [ref.detach(), low.grad, high.grad] + [p.grad for p in fine.parameters()]
    torch.testing.assert_close(lean[0], generic[0], rtol=1e-6, atol=1e-6)
    for a, b in zip(lean[1:], generic[1:]):
        # the pooled tokens differ in the last bit (summation order); softmax attention
        # carries that into the weight gradients: compare relative to each tensor's scale
        assert (a - b).abs().max() <= 1e-5 * b.abs().max(), (a - b).abs().max()


@pytest.mark.parametrize('f', [1, 2, 3, 4])
def test_block_sums_against_avg_pool_and_non_contiguous_inputs(f):
    """Pooling equals avg_pool2d for every block size, also for a channels-last input; the
    modulation's forward is bit-identical to the broadcast addcmul."""
    g = torch.Generator().manual_seed(f)
    x = torch.randn(2, 5, 3 * f, 4 * f, generator=g)
    m = torch.randn(2, 5, 3, 4, generator=g)
    for inp in (x, x.to(memory_format=torch.channels_last)):
        torch.testing.assert_close(block_avg_pool(inp, f)[0], F.avg_pool2d(x, f, f),
                                   rtol=1e-6, atol=1e-6)
        ref = torch.addcmul(x, x, m.repeat_interleave(f, 2).repeat_interleave(f, 3))
        assert torch.equal(block_residual_modulate(inp, m, f), ref)


def test_chunked_product_sum_equals_the_full_product(monkeypatch):
    """The modulation's gradient reduction through the small reused buffer gives the
    numbers of the full-size product (bit for bit), also when the chunk splits planes
    unevenly."""
    from fusion_necks.layers import block_ops
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 7, 12, 20, generator=g), torch.randn(2, 7, 12, 20, generator=g)
    full = block_ops._block_sum(a * b, 4)
    monkeypatch.setattr(block_ops, 'PRODUCT_CHUNK_ELEMENTS', 3 * 12 * 20)  # 3 of 14 planes
    assert torch.equal(block_ops._block_sum_of_product(a, b, 4), full)


def _paired(low, tokens_fn, f):
    from fusion_necks.layers.block_ops import pool_and_modulate
    return pool_and_modulate(low, f, tokens_fn)


@pytest.mark.parametrize('f', [2, 4])
def test_pool_and_modulate_gradcheck_float64(f):
    g = torch.Generator().manual_seed(2)
    low = torch.randn(2, 3, 2 * f, 3 * f, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    mix = lambda t: torch.einsum('oc,bchw->bohw', w, t).tanh()  # noqa: E731
    assert torch.autograd.gradcheck(lambda x, w_: _paired(x, lambda t: torch.einsum(
        'oc,bchw->bohw', w_, t).tanh(), f), (low, w))
    # same numbers as the two separate functions and as the generic ops
    up = torch.randn(2, 3, 2 * f, 3 * f, dtype=torch.float64, generator=g)
    grads = []
    for fn in (_generic, _lean, _paired):
        low.grad = None
        out = fn(low, mix, f)
        out.backward(up)
        grads.append((out.detach(), low.grad.clone()))
    for out, grad in grads[1:]:
        torch.testing.assert_close(out, grads[0][0])
        torch.testing.assert_close(grad, grads[0][1])


def test_pool_and_modulate_writes_the_gradient_once(monkeypatch):
    """The modulation hands its upstream gradient on untouched; the pooling's backward
    writes the gradient of low in one addcmul (no separate add of two full-size maps)."""
    from fusion_necks.layers import block_ops
    calls = []
    real_addcmul, real_add = torch.addcmul, torch.add
    monkeypatch.setattr(block_ops.torch, 'addcmul',
                        lambda *a, **k: calls.append('addcmul') or real_addcmul(*a, **k))
    monkeypatch.setattr(block_ops.torch, 'add',
                        lambda *a, **k: calls.append('add') or real_add(*a, **k))
    low = torch.randn(1, 4, 8, 8, requires_grad=True)
    out = block_ops.pool_and_modulate(low, 4, lambda t: t * 2.0)
    calls.clear()
    out.sum().backward()
    assert calls == ['addcmul']
    expected = low.detach().clone().requires_grad_()
    _generic(expected, lambda t: t * 2.0, 4).sum().backward()
    torch.testing.assert_close(low.grad, expected.grad)


def test_pool_and_modulate_alias_used_twice_and_retain_graph():
    """Gradients stay right when the pair is not the only user of low, and on a second
    backward through a retained graph."""
    g = torch.Generator().manual_seed(3)
    low = torch.randn(2, 3, 8, 12, dtype=torch.float64, generator=g, requires_grad=True)
    up = torch.randn(2, 3, 8, 12, dtype=torch.float64, generator=g)
    mix = lambda t: t.tanh()  # noqa: E731
    ref = low.detach().clone().requires_grad_()
    (_generic(ref, mix, 4) * up + ref.pow(2)).sum().backward()

    out = _paired(low, mix, 4)
    loss = (out * up + low.pow(2)).sum()
    loss.backward(retain_graph=True)
    torch.testing.assert_close(low.grad, ref.grad)
    low.grad = None
    loss.backward()
    torch.testing.assert_close(low.grad, ref.grad)


def test_pool_and_modulate_without_grad_matches():
    low = torch.randn(1, 2, 8, 8)
    with torch.inference_mode():
        a = _paired(low, lambda t: t.sin(), 2)
    torch.testing.assert_close(a, _generic(low, lambda t: t.sin(), 2))


def test_link_fallback_when_the_alias_has_another_user():
    """If the alias reaches the pooling's backward with other gradients summed in (not
    the raw tensor the modulation handed on), the raw part is taken out again."""
    from fusion_necks.layers import block_ops
    g = torch.Generator().manual_seed(4)
    low = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=g, requires_grad=True)
    link = block_ops._Link()
    tokens, alias = block_ops._BlockAvgPool.apply(low, 4, link)
    out = block_ops._BlockResidualModulate.apply(alias, tokens.cos(), 4, link)
    (out.sum() + (alias * 3.0).sum()).backward()
    ref = low.detach().clone().requires_grad_()
    (_generic(ref, lambda t: t.cos(), 4).sum() + (ref * 3.0).sum()).backward()
    torch.testing.assert_close(low.grad, ref.grad)
