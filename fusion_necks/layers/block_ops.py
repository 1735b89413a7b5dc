"""Non-overlapping ``f x f`` block pooling and block modulation with lean backward passes.

FINE's AATS path (Eqs. 4, 8, 9 of Lee, Lee, Kang, arXiv 2606.14005) averages the low map
over ``f x f`` blocks, and later multiplies every pixel of a block by that block's
modulation: ``out = low * (1 + M_hat[block])``. On a CPU, with the full-resolution low map
(e.g. 2 x 256 x 100 x 168 at an 800x1344 input), the backward of those two steps is
memory-bound, and PyTorch's generic backward makes several full-size passes
(``avg_pool2d_backward`` zero-fills and copies its result; the broadcast ``addcmul``
backward materialises ``grad * low`` and ``grad * m`` separately and then autograd adds
the two gradients of ``low``). The functions here compute the same numbers with fewer
passes:

- :func:`block_avg_pool` ``(x, f) -> (pooled, x_alias)``: forward is
  ``F.avg_pool2d(x, f, f)`` (the same sums in another order: within float rounding); the
  backward adds the gradient of the pooled map, broadcast over each block and divided by
  ``f^2``, to the gradient of the alias in one pass. Use the alias wherever ``x`` is
  used again (the modulation) so that the two gradients meet inside this function
  instead of in a separate autograd addition.
- :func:`block_residual_modulate` ``(low, m_hat, f)``: ``low * m + low`` with ``m``
  broadcast over each block (one ``addcmul``, as before); backward
  ``grad_low = grad * (1 + m)`` (one ``addcmul``) and ``grad_m = sum_block(grad * low)``.

Both need ``H`` and ``W`` divisible by ``f``; callers fall back to the generic ops
otherwise. All operands keep W innermost and contiguous (``B x C x H/f x f x W`` views,
the per-block values repeated along W), which lets the CPU kernels vectorise. The
modulation's forward is bit-identical to the broadcast ``addcmul``; the pooling and the
gradients agree with the generic ops to float rounding (another summation order),
checked in ``tests/test_layers/test_block_ops.py``.

Shapes: ``x``/``low`` ``B x C x H x W``; ``pooled``/``m_hat`` ``B x C x H/f x W/f``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def _rows(x: Tensor, f: int) -> Tensor:
    """``B x C x H x W`` -> ``B x C x H/f x f x W`` (a view of a contiguous map)."""
    b, c, h, w = x.shape
    return x.view(b, c, h // f, f, w)


def _repeat_cols(m: Tensor, f: int) -> Tensor:
    """``B x C x h x w`` -> ``B x C x h x 1 x (w f)``: each cell repeated ``f`` times along
    W (materialised, 1/f of the full map), so that it broadcasts over the ``f`` rows of
    :func:`_rows`. Keeping W innermost and contiguous in every operand lets the
    elementwise kernels vectorise; a 6-d ``... x w x f`` layout has an innermost dim of
    size ``f`` (2) and ran 1.4-2x slower on the CPU."""
    b, c, h, w = m.shape
    if f == 1:
        return m.view(b, c, h, 1, w)
    return m.unsqueeze(-1).expand(b, c, h, w, f).reshape(b, c, h, 1, w * f)


def _block_sum(x: Tensor, f: int) -> Tensor:
    """Sum over non-overlapping ``f x f`` blocks: ``B x C x H x W`` -> ``B x C x H/f x W/f``.

    Rows first (a reduction over a non-innermost dim, vectorised along W), then the ``f``
    neighbours along W as ``f - 1`` strided additions (faster than ``sum`` over an
    innermost dim of 2)."""
    if f == 1:
        return x.clone()
    b, c, h, w = x.shape
    cols = x.reshape(b, c, h // f, f, w).sum(3).view(b, c, h // f, w // f, f)  # rows, then W
    out = cols[..., 0] + cols[..., 1]
    for i in range(2, f):
        out += cols[..., i]
    return out


#: elements of the reused product buffer of :func:`_block_sum_of_product` (4 MB in fp32)
PRODUCT_CHUNK_ELEMENTS = 1 << 20


def _block_sum_of_product(a: Tensor, b: Tensor, f: int) -> Tensor:
    """``_block_sum(a * b, f)`` without the full-size product: ``B*C`` planes at a time
    through one reused buffer (a fresh full-size temporary of a large map is also a fresh
    ``mmap`` on glibc, and its page faults cost more than the multiply)."""
    bs, c, h, w = a.shape
    n = bs * c
    a3, b3 = a.reshape(n, h, w), b.reshape(n, h, w)
    rows = max(1, min(n, PRODUCT_CHUNK_ELEMENTS // max(1, h * w)))
    out = a.new_empty(n, h // f, w // f)
    buf = a.new_empty(rows, h, w)
    for r in range(0, n, rows):
        e = min(n, r + rows)
        prod = torch.mul(a3[r:e], b3[r:e], out=buf[:e - r])
        out[r:e] = _block_sum(prod.view(1, e - r, h, w), f)[0]
    return out.view(bs, c, h // f, w // f)


def _check(x: Tensor, f: int) -> None:
    if x.dim() != 4 or f < 1 or x.shape[-2] % f or x.shape[-1] % f:
        raise ValueError(f'block ops need a B x C x H x W map with H and W divisible by '
                         f'the block size {f}, got {tuple(x.shape)}')


class _BlockAvgPool(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, f: int) -> Tuple[Tensor, Tensor]:
        ctx.f = f
        ctx.shape = x.shape
        return _block_sum(x.contiguous(), f).mul_(1.0 / (f * f)), x.view_as(x)

    @staticmethod
    def backward(ctx, grad_pooled: Optional[Tensor], grad_alias: Optional[Tensor]):
        f = ctx.f
        b, c, h, w = ctx.shape
        if grad_pooled is None:
            return grad_alias, None
        share = _repeat_cols(grad_pooled * (1.0 / (f * f)), f)  # B x C x h x 1 x W
        if grad_alias is None:
            grad = share.expand(b, c, h // f, f, w)
        else:
            grad = torch.add(_rows(grad_alias.contiguous(), f), share)  # one pass, broadcast
        return grad.reshape(b, c, h, w), None


def block_avg_pool(x: Tensor, f: int) -> Tuple[Tensor, Tensor]:
    """``(avg_pool2d(x, f, f), alias of x)``; see the module docstring."""
    _check(x, f)
    return _BlockAvgPool.apply(x, f)


class _BlockResidualModulate(torch.autograd.Function):

    @staticmethod
    def forward(ctx, low: Tensor, m_hat: Tensor, f: int) -> Tensor:
        ctx.f = f
        low = low.contiguous()
        ctx.save_for_backward(low, m_hat)
        low5 = _rows(low, f)
        return torch.addcmul(low5, low5, _repeat_cols(m_hat, f)).view(low.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        low, m_hat = ctx.saved_tensors
        f = ctx.f
        grad = grad.contiguous()
        grad_low = grad_m = None
        # grad_m first: its full-size temporary is freed before grad_low is allocated
        if ctx.needs_input_grad[1]:
            grad_m = _block_sum_of_product(grad, low, f)
        if ctx.needs_input_grad[0]:
            g5 = _rows(grad, f)
            grad_low = torch.addcmul(g5, g5, _repeat_cols(m_hat, f)).view(low.shape)
        return grad_low, grad_m, None


def block_residual_modulate(low: Tensor, m_hat: Tensor, f: int) -> Tensor:
    """``low * Up_f(m_hat) + low`` (Eq. 9 with nearest ``Up``, Eq. 8), lean backward."""
    _check(low, f)
    b, c, h, w = low.shape
    if m_hat.shape != (b, c, h // f, w // f):
        raise ValueError(f'm_hat must be {b} x {c} x {h // f} x {w // f} for low '
                         f'{tuple(low.shape)} and block size {f}, got {tuple(m_hat.shape)}')
    return _BlockResidualModulate.apply(low, m_hat, f)


__all__ = ['block_avg_pool', 'block_residual_modulate']
