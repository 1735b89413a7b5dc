"""Rasterise point tokens onto a dense stride-s grid (for standard dense heads).

AutoFocusFormer's stages are sets of tokens at integer positions of the stride-4 canvas.
Standard OpenMMLab necks and heads (FPN, UPerHead, ...) need ``B x C x H_s x W_s`` maps.
This helper evaluates the tokens at the centres of the cells of a stride-``s`` grid by
inverse-distance interpolation from the ``k`` nearest tokens
(:func:`~fusion_necks.ops.inverse_distance.inverse_distance_interpolate`):

* cell ``(u, v)`` of the stride-``s`` grid covers canvas columns ``[u f, (u + 1) f)``
  with ``f = s / base_stride``; its centre is at ``u f + (f - 1) / 2`` (canvas units);
* the grid is ``ceil(h / f) x ceil(w / f)`` for an ``h x w`` canvas, the same size as a
  strided convolution backbone produces.

When every canvas cell holds exactly one token (the un-downsampled stage 1 at ``s = 4``)
the map is an exact scatter, computed without any neighbour search. This is not in the
paper, whose heads consume the points directly (see the point-based pixel decoder);
it lets AFF serve as a drop-in backbone for dense heads.
"""
import math
from typing import Tuple, Union

import torch
from torch import Tensor

from .inverse_distance import inverse_distance_interpolate


def dense_grid_centres(canvas_hw: Tuple[int, int], factor: int,
                       device=None, dtype=torch.float32) -> Tuple[Tensor, int, int]:
    """Centres (x, y) of the cells of a grid ``factor`` times coarser than the canvas.

    Returns:
        ``(centres (Hs*Ws) x 2 in row-major order, Hs, Ws)``.
    """
    h, w = canvas_hw
    hs, ws = math.ceil(h / factor), math.ceil(w / factor)
    off = (factor - 1) / 2
    ys = torch.arange(hs, device=device, dtype=dtype) * factor + off
    xs = torch.arange(ws, device=device, dtype=dtype) * factor + off
    gy, gx = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], -1), hs, ws


def points_to_dense(feat: Tensor,
                    pos: Tensor,
                    canvas_hw: Tuple[int, int],
                    stride: int,
                    base_stride: int = 4,
                    k: int = 4,
                    power: Union[float, Tensor] = 2.0) -> Tensor:
    """Rasterise ``B x N x C`` tokens at ``pos`` onto a dense stride-``stride`` map.

    Args:
        feat: ``B x N x C`` token features.
        pos: ``B x N x 2`` (x, y) token positions on the ``base_stride`` canvas.
        canvas_hw: ``(h, w)`` of that canvas.
        stride: output stride in input pixels; a multiple of ``base_stride``.
        base_stride: the canvas stride (4 for AutoFocusFormer).
        k: neighbours per cell centre for the interpolation.
        power: inverse-distance power.

    Returns:
        ``B x C x ceil(h / f) x ceil(w / f)`` with ``f = stride / base_stride``.
    """
    if stride % base_stride != 0:
        raise ValueError(f'stride must be a multiple of base_stride={base_stride}, got {stride}')
    b, n, c = feat.shape
    h, w = canvas_hw
    factor = stride // base_stride
    if factor == 1 and n == h * w:
        # one token per cell: exact scatter (positions are a permutation of the grid)
        lin = (pos[..., 1].long() * w + pos[..., 0].long())  # B x N
        out = feat.new_zeros(b, h * w, c)
        out.scatter_(1, lin.unsqueeze(-1).expand(-1, -1, c), feat)
        return out.transpose(1, 2).reshape(b, c, h, w)
    centres, hs, ws = dense_grid_centres(canvas_hw, factor, device=feat.device)
    query = centres.unsqueeze(0).expand(b, -1, -1)
    dense = inverse_distance_interpolate(query, pos, feat, k=min(k, n), power=power)
    return dense.transpose(1, 2).reshape(b, c, hs, ws)
