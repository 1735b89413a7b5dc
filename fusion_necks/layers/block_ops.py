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

- :func:`pool_and_modulate` ``(low, f, tokens_to_m)``: the pair around any map from the
  pooled tokens to ``M_hat`` (FINE's lean path). The modulation's backward hands its
  upstream gradient on untouched and the pooling's backward writes the gradient of
  ``low`` once, ``grad * (1 + m) + Up_f(grad_tokens) / f^2`` (one ``addcmul``): one
  full-size tensor and one pass fewer than the two functions above, whose gradients of
  ``low`` are two full-size tensors added. The forward multiplies by a repeated ``1 + m``
  (within one rounding of ``low + low * m``) and keeps it for that backward.

All need ``H`` and ``W`` divisible by ``f``; callers fall back to the generic ops
otherwise. All operands keep W innermost and contiguous (``B x C x H/f x f x W`` views,
the per-block values repeated along W), which lets the CPU kernels vectorise. The
modulation's forward is bit-identical to the broadcast ``addcmul``; the pooling and the
gradients agree with the generic ops to float rounding (another summation order),
checked in ``tests/test_layers/test_block_ops.py``.

Shapes: ``x``/``low`` ``B x C x H x W``; ``pooled``/``m_hat`` ``B x C x H/f x W/f``.
"""
from typing import Callable, Optional, Tuple

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


def _repeat_cols_affine(m: Tensor, f: int, scale: float = 1.0, shift: float = 0.0) -> Tensor:
    """``_repeat_cols(m * scale + shift, f)`` in one pass: the elementwise op writes the
    repeated layout directly (no small temporary; ``m`` may be strided, e.g. the
    channels-last view that the attention returns)."""
    b, c, h, w = m.shape
    src = m.unsqueeze(-1).expand(b, c, h, w, f)
    out = m.new_empty(b, c, h, w, f)
    if shift != 0.0:
        torch.add(src if scale == 1.0 else src * scale, shift, out=out)
    else:
        torch.mul(src, scale, out=out)
    return out.view(b, c, h, 1, w * f)


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


class _Link:
    """Shared state of one pooling -> modulation pair (:func:`pool_and_modulate`).

    The modulation's backward does not compute ``low``'s part of the gradient, ``grad * (1
    + m)``; it hands the upstream gradient itself on (``raw``) and the pooling's backward,
    which runs later and also holds the tokens' gradient, writes the whole gradient of
    ``low`` in one pass: ``grad * (1 + m) + Up_f(grad_pooled) / f^2``. That is one full-size
    tensor and one pass over it instead of two of each."""
    __slots__ = ('one_plus_m', 'raw')

    def __init__(self) -> None:
        self.one_plus_m: Optional[Tensor] = None  # B x C x H/f x 1 x W, from the forward
        self.raw: Optional[Tensor] = None         # the modulation's upstream gradient


class _BlockAvgPool(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x: Tensor, f: int, link: Optional[_Link] = None) -> Tuple[Tensor, Tensor]:
        ctx.f = f
        ctx.shape = x.shape
        if link is not None:
            ctx.link = link
        if not torch.onnx.is_in_onnx_export():  # keep the export's trace as it was
            # an unused alias (a sampler that only pools) gets None, not a zero-filled map
            ctx.set_materialize_grads(False)
        return _block_sum(x.contiguous(), f).mul_(1.0 / (f * f)), x.view_as(x)

    @staticmethod
    def backward(ctx, grad_pooled: Optional[Tensor], grad_alias: Optional[Tensor]):
        f = ctx.f
        b, c, h, w = ctx.shape
        # the link and its (1 + m) stay on ctx for a retain_graph rerun
        link, raw = getattr(ctx, 'link', None), None
        if link is not None:
            raw, link.raw = link.raw, None
        share = None
        if grad_pooled is not None:
            share = _repeat_cols_affine(grad_pooled, f, scale=1.0 / (f * f))  # B x C x h x 1 x W
        if raw is not None:
            raw5 = _rows(raw.contiguous(), f)
            if grad_alias is not None and grad_alias is not raw:
                # the alias was also used outside the pair: autograd summed the raw
                # gradient with the others; take the raw part out again
                other = _rows(grad_alias.contiguous(), f) - raw5
                share = other if share is None else other + share
            if share is None:
                grad = raw5 * link.one_plus_m
            else:
                grad = torch.addcmul(share, raw5, link.one_plus_m)  # one full-size pass
            return grad.reshape(b, c, h, w), None, None
        if share is None:
            return grad_alias, None, None
        if grad_alias is None:
            grad = share.expand(b, c, h // f, f, w)
        else:
            grad = torch.add(_rows(grad_alias.contiguous(), f), share)  # one pass, broadcast
        return grad.reshape(b, c, h, w), None, None


def block_avg_pool(x: Tensor, f: int) -> Tuple[Tensor, Tensor]:
    """``(avg_pool2d(x, f, f), alias of x)``; see the module docstring."""
    _check(x, f)
    return _BlockAvgPool.apply(x, f)


class _BlockResidualModulate(torch.autograd.Function):

    @staticmethod
    def forward(ctx, low: Tensor, m_hat: Tensor, f: int,
                link: Optional[_Link] = None) -> Tensor:
        ctx.f = f
        if link is not None:
            ctx.link = link
        low = low.contiguous()
        low5 = _rows(low, f)
        if link is None:
            ctx.save_for_backward(low, m_hat)
            return torch.addcmul(low5, low5, _repeat_cols(m_hat, f)).view(low.shape)
        # low * (1 + m): the repeated (1 + m) is kept for the pooling's backward
        one_plus_m = _repeat_cols_affine(m_hat, f, shift=1.0)
        link.one_plus_m = one_plus_m
        ctx.save_for_backward(low, one_plus_m)
        return (low5 * one_plus_m).view(low.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        low, m_saved = ctx.saved_tensors
        f, link = ctx.f, getattr(ctx, 'link', None)
        grad = grad.contiguous()
        grad_low = grad_m = None
        # grad_m first: its full-size temporary is freed before grad_low is allocated
        if ctx.needs_input_grad[1]:
            grad_m = _block_sum_of_product(grad, low, f)
        if ctx.needs_input_grad[0]:
            if link is not None:
                link.raw = grad_low = grad  # finished by the pooling's backward (_Link)
            else:
                g5 = _rows(grad, f)
                grad_low = torch.addcmul(g5, g5, _repeat_cols(m_saved, f)).view(low.shape)
        return grad_low, grad_m, None, None


def block_residual_modulate(low: Tensor, m_hat: Tensor, f: int) -> Tensor:
    """``low * Up_f(m_hat) + low`` (Eq. 9 with nearest ``Up``, Eq. 8), lean backward."""
    _check_modulation(low, m_hat, f)
    return _BlockResidualModulate.apply(low, m_hat, f)


def _check_modulation(low: Tensor, m_hat: Tensor, f: int) -> None:
    _check(low, f)
    b, c, h, w = low.shape
    if m_hat.shape != (b, c, h // f, w // f):
        raise ValueError(f'm_hat must be {b} x {c} x {h // f} x {w // f} for low '
                         f'{tuple(low.shape)} and block size {f}, got {tuple(m_hat.shape)}')


def pool_and_modulate(low: Tensor, f: int, tokens_to_m: Callable[[Tensor], Tensor]) -> Tensor:
    """``low * (1 + Up_f(tokens_to_m(avg_pool_f(low))))``: FINE's Eqs. 4, 8, 9 around any
    map from the pooled tokens to ``M_hat`` (the attention, Eqs. 5-7).

    The same numbers as :func:`block_avg_pool` followed by :func:`block_residual_modulate`
    (the product is ``low * (1 + m)`` instead of ``low + low * m``: within one rounding),
    with a leaner backward: the gradient of ``low`` is written once, by the pooling's
    backward (:class:`_Link`), instead of by both functions and then added.

    Args:
        low (Tensor): ``B x C x H x W``, ``H`` and ``W`` divisible by ``f``.
        f (int): block size (``r k``).
        tokens_to_m (callable): ``B x C x H/f x W/f`` tokens -> ``M_hat`` of the same shape.
    """
    _check(low, f)
    if (not (torch.is_grad_enabled() and low.requires_grad) or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export()):
        # no backward to share (inference, ONNX export): plain ops, which export as they are
        b, c, h, w = low.shape
        m_hat = tokens_to_m(F.avg_pool2d(low, f, f))
        _check_modulation(low, m_hat, f)
        low5 = _rows(low.contiguous(), f)
        return torch.addcmul(low5, low5, _repeat_cols(m_hat, f)).view(b, c, h, w)
    link = _Link()
    tokens, alias = _BlockAvgPool.apply(low, f, link)
    m_hat = tokens_to_m(tokens)
    _check_modulation(alias, m_hat, f)
    return _BlockResidualModulate.apply(alias, m_hat, f, link)


__all__ = ['block_avg_pool', 'block_residual_modulate', 'pool_and_modulate']
