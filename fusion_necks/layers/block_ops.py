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
  ``F.avg_pool2d(x, f, f)`` (bit-identical to :class:`TokenSampler`'s ``'avg'``); the
  backward adds the gradient of the pooled map, broadcast over each block and divided by
  ``f^2``, to the gradient of the alias in one pass. Use the alias wherever ``x`` is
  used again (the modulation) so that the two gradients meet inside this function
  instead of in a separate autograd addition.
- :func:`block_residual_modulate` ``(low, m_hat, f)``: ``low * m + low`` with ``m``
  broadcast over each block (one ``addcmul``, as before); backward
  ``grad_low = grad * (1 + m)`` (one ``addcmul``) and ``grad_m = sum_block(grad * low)``.

Both need ``H`` and ``W`` divisible by ``f``; callers fall back to the generic ops
otherwise. Forward outputs are bit-identical to the generic ops; gradients agree to
float rounding (a different summation order), checked in ``tests/test_layers``.

Shapes: ``x``/``low`` ``B x C x H x W``; ``pooled``/``m_hat`` ``B x C x H/f x W/f``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def _blocks(x: Tensor, f: int) -> Tensor:
    """``B x C x H x W`` -> ``B x C x H/f x f x W/f x f`` (a view when possible)."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f)


def _cells(x: Tensor) -> Tensor:
    """``B x C x h x w`` -> ``B x C x h x 1 x w x 1``: broadcasts over each block."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h, 1, w, 1)


def _check(x: Tensor, f: int) -> None:
    if x.dim() != 4 or f < 1 or x.shape[-2] % f or x.shape[-1] % f:
        raise ValueError(f'block ops need a B x C x H x W map with H and W divisible by '
                         f'the block size {f}, got {tuple(x.shape)}')


class _BlockAvgPool(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, f: int) -> Tuple[Tensor, Tensor]:
        ctx.f = f
        ctx.shape = x.shape
        return F.avg_pool2d(x, f, f), x.view_as(x)

    @staticmethod
    def backward(ctx, grad_pooled: Optional[Tensor], grad_alias: Optional[Tensor]):
        f = ctx.f
        b, c, h, w = ctx.shape
        if grad_pooled is None:
            return grad_alias, None
        share = _cells(grad_pooled * (1.0 / (f * f)))
        if grad_alias is None:
            grad = share.expand(b, c, h // f, f, w // f, f)
        else:
            grad = torch.add(_blocks(grad_alias, f), share)  # one pass, broadcast
        return grad.reshape(b, c, h, w), None


def block_avg_pool(x: Tensor, f: int) -> Tuple[Tensor, Tensor]:
    """``(avg_pool2d(x, f, f), alias of x)``; see the module docstring."""
    _check(x, f)
    return _BlockAvgPool.apply(x, f)


class _BlockResidualModulate(torch.autograd.Function):

    @staticmethod
    def forward(ctx, low: Tensor, m_hat: Tensor, f: int) -> Tensor:
        ctx.f = f
        ctx.save_for_backward(low, m_hat)
        low6 = _blocks(low, f)
        return torch.addcmul(low6, low6, _cells(m_hat)).reshape(low.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        low, m_hat = ctx.saved_tensors
        f = ctx.f
        g6 = _blocks(grad, f)
        grad_low = grad_m = None
        # grad_m first: its full-size temporary is freed before grad_low is allocated
        if ctx.needs_input_grad[1]:
            grad_m = (g6 * _blocks(low, f)).sum(5).sum(3)
        if ctx.needs_input_grad[0]:
            grad_low = torch.addcmul(g6, g6, _cells(m_hat)).reshape(low.shape)
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
