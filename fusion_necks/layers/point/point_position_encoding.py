"""DETR sine position encoding evaluated at point-token coordinates.

mmdet's ``SinePositionalEncoding`` encodes the cell ``(i, j)`` of an ``H x W`` map by
``y = (i + 1 + offset) / (H + eps) * scale`` and ``x = (j + 1 + offset) / (W + eps) *
scale`` (its ``cumsum`` of a mask without padding), then ``[sin(y/t_0), cos(y/t_0), ...,
sin(x/t_0), cos(x/t_0), ...]`` with ``t_k = temperature^(2 floor(k/2) / num_feats)``. The
official point-based Mask2Former applies the same embedding "directly to the (x, y) token
coordinates" (official ``msdeformattn_pc.py``, apple/ml-autofocusformer-segmentation). Here:

* ``normalize_by='canvas'`` (default): a token at canvas position ``(x, y)`` is encoded
  exactly as mmdet encodes the cell ``(y, x)`` of the full ``h x w`` canvas map, so on a
  full grid this *is* mmdet's encoding, and one image's encoding never depends on the
  other tokens or images;
* ``normalize_by='tensor_max'``: coordinates divided by their maximum over the whole
  batch tensor (each axis), the official code's reading.
"""
import math
from typing import Tuple

import torch
from torch import Tensor

from ...utils.validation import check_choice

NORMALIZE_BY = ('canvas', 'tensor_max')


def point_sine_encoding(pos: Tensor, canvas: Tuple[int, int], num_feats: int = 128,
                        temperature: float = 10000, normalize: bool = True,
                        scale: float = 2 * math.pi, eps: float = 1e-6, offset: float = 0.0,
                        normalize_by: str = 'canvas') -> Tensor:
    """Sine encoding of ``B x N x 2`` (x, y) canvas positions -> ``B x N x 2*num_feats``
    (y features first, as mmdet's channel order)."""
    check_choice('normalize_by', normalize_by, NORMALIZE_BY)
    h, w = canvas
    p = pos.float()
    x, y = p[..., 0], p[..., 1]
    if normalize_by == 'canvas':
        x, y = x + 1, y + 1  # mmdet's cumsum index of cell j is j + 1
        if normalize:
            x = (x + offset) / (w + eps) * scale
            y = (y + offset) / (h + eps) * scale
    elif normalize:
        x = (x + offset) / (x.max() + eps) * scale
        y = (y + offset) / (y.max() + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)

    def enc(v: Tensor) -> Tensor:
        a = v.unsqueeze(-1) / dim_t
        return torch.stack((a[..., 0::2].sin(), a[..., 1::2].cos()), -1).flatten(-2)

    return torch.cat([enc(y), enc(x)], -1)
