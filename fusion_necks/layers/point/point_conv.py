"""PointConv over the k nearest point tokens, and a fast exact kNN for full grids.

AutoFocusFormer (CVPR 2023, Sec. 4.1) replaces the 3x3 convolutions of the Mask2Former
pixel decoder by a PointConv layer (Wu et al., CVPR 2019) in the form of its Eq. 4
without the importance score:

    f_out(p_c) = vec( sum_{j in kNN(p_c)} W(p_j - p_c) f_j^T ) U

with the weight net ``W = Linear(F -> C_mid) -> LayerNorm(C_mid) -> GELU`` on the
expanded relative position (F = 5, ``[dx, dy, d, dx/d, dy/d]``, Sec. 4.2), ``C_mid = 4``
and ``U = Linear(C_mid * C_in -> C_out)``. On the full stride-4 grid the 9 nearest
tokens of an interior token are exactly its 3x3 patch.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from ...ops.gather import batched_index_select
from ...ops.knn import knn
from ...ops.rel_pos_features import REL_POS_ORDERS, expanded_rel_pos, rel_pos_dim
from ...ops.weighted_aggregation import AGG_MAX_ELEMENTS, weighted_neighbour_sum
from ...utils.validation import check_choice, check_int

REL_POS_SIGNS = ('neighbour_minus_centre', 'centre_minus_neighbour')


def is_full_grid(pos: Tensor, canvas: Tuple[int, int]) -> bool:
    """True when every image's integer ``pos`` (``B x N x 2``) cover all ``h*w`` cells once."""
    h, w = canvas
    if pos.is_floating_point() or pos.shape[1] != h * w:
        return False
    x, y = pos[..., 0], pos[..., 1]
    if bool((x < 0).any() or (x >= w).any() or (y < 0).any() or (y >= h).any()):
        return False
    lin = (y * w + x).sort(dim=1).values
    return bool((lin == torch.arange(h * w, device=pos.device)).all())


@torch.no_grad()
def grid_self_knn(pos: Tensor, canvas: Tuple[int, int], k: int) -> Tensor:
    """Exact k nearest tokens (self included) of tokens forming a full integer grid.

    Instead of an ``N x N`` distance matrix, each token looks at the ``(2R+1)^2`` window
    around it with ``R = floor(sqrt(2) * (s - 1))``, ``s = ceil(sqrt(k))``: an ``s x s``
    block of the grid containing the token lies within ``sqrt(2) (s-1)`` of it (also at
    borders and corners), and every cell outside the window is at least ``R + 1`` away,
    so the k nearest are inside. Equidistant candidates are ordered by their position
    in the window (row-major), which makes the result deterministic.

    Args:
        pos: ``B x N x 2`` int64 positions covering the ``h x w`` canvas
            (:func:`is_full_grid`), in any order.
        canvas: ``(h, w)``.
        k: neighbours, ``1 <= k <= h*w``.

    Returns:
        ``B x N x k`` int64 token indices, nearest first.
    """
    h, w = canvas
    b, n, _ = pos.shape
    if not 1 <= k <= n:
        raise ValueError(f'k must be in [1, {n}], got {k}')
    s = math.ceil(math.sqrt(k))
    r = int(math.floor(math.sqrt(2) * (s - 1) + 1e-9))
    d = torch.arange(-r, r + 1, device=pos.device)
    dy, dx = torch.meshgrid(d, d, indexing='ij')
    dx, dy = dx.reshape(-1), dy.reshape(-1)  # window offsets, row-major
    nw = dx.numel()
    # inverse permutation: token index of each cell
    lin = pos[..., 1] * w + pos[..., 0]  # B x N
    cell_to_tok = torch.empty_like(lin)
    cell_to_tok.scatter_(1, lin, torch.arange(n, device=pos.device).expand(b, -1))
    cx = pos[..., 0].unsqueeze(-1) + dx  # B x N x nw
    cy = pos[..., 1].unsqueeze(-1) + dy
    valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    key = (dx * dx + dy * dy) * nw + torch.arange(nw, device=pos.device)  # distance, then order
    key = key.expand(b, n, -1).masked_fill(~valid, torch.iinfo(torch.long).max)
    sel = key.topk(k, dim=-1, largest=False, sorted=True).indices  # B x N x k
    cells = (cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).gather(-1, sel)
    return batched_index_select(cell_to_tok.unsqueeze(-1), cells).squeeze(-1)


@torch.no_grad()
def self_knn(pos: Tensor, canvas: Optional[Tuple[int, int]], k: int) -> Tensor:
    """k nearest tokens of each token among the same tokens (self included), ``B x N x k``.

    Uses :func:`grid_self_knn` when the tokens form the full canvas grid (the stride-4
    level of AutoFocusFormer), chunked brute force (:func:`~fusion_necks.ops.knn`)
    otherwise.
    """
    k = min(k, pos.shape[1])
    if canvas is not None and is_full_grid(pos, canvas) and min(canvas) >= math.ceil(math.sqrt(k)):
        return grid_self_knn(pos, canvas, k)
    return knn(pos, pos, k)[1]


class PointConv(nn.Module):
    """PointConv on point tokens (AFF Sec. 4.1 / Eq. 4 without the score modulation).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        num_neighbours: k nearest tokens (self included); 9 replaces a 3x3 convolution.
        mid_channels: C_mid, output width of the weight net (4 in the paper).
        expanded_rel_pos: weight-net input ``[dx, dy, d, cos, sin]`` (paper Sec. 4.2) or
            only ``[dx, dy]``.
        rel_pos_order: ``'paper'`` ``[dx, dy, d, dx/d, dy/d]`` or ``'official'``
            ``[dx, dy, d, dy/d, dx/d]`` (see :mod:`fusion_necks.ops.rel_pos_features`).
        rel_pos_sign: ``'neighbour_minus_centre'`` (default: Eq. 4's ``p_i - p_c``) or
            ``'centre_minus_neighbour'`` (the official pixel decoder). With a learned
            weight net the two are the same model up to the sign of four input columns.
        aggregation_norm: a ``LayerNorm(C_mid * C_in)`` between ``vec(.)`` and ``U``, as
            the official pixel decoder has; Eq. 4 has none (default False).
        bias: bias of ``U``.
        max_elements: chunk bound of the neighbour aggregation.

    Shapes: ``feat`` ``B x N x C_in``, ``pos`` ``B x N x 2`` (canvas units), optional
    precomputed ``nbr_idx`` ``B x N x k`` -> ``B x N x C_out``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_neighbours: int = 9,
                 mid_channels: int = 4, expanded_rel_pos: bool = True,
                 rel_pos_order: str = 'paper', rel_pos_sign: str = 'neighbour_minus_centre',
                 aggregation_norm: bool = False, bias: bool = True,
                 max_elements: int = AGG_MAX_ELEMENTS) -> None:
        super().__init__()
        check_int('num_neighbours', num_neighbours)
        check_int('mid_channels', mid_channels)
        check_choice('rel_pos_order', rel_pos_order, REL_POS_ORDERS)
        check_choice('rel_pos_sign', rel_pos_sign, REL_POS_SIGNS)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_neighbours = num_neighbours
        self.mid_channels = mid_channels
        self.expanded_rel_pos = expanded_rel_pos
        self.rel_pos_order = rel_pos_order
        self.rel_pos_sign = rel_pos_sign
        self.max_elements = max_elements
        self.weight_net = nn.Sequential(
            nn.Linear(rel_pos_dim(expanded_rel_pos), mid_channels), nn.LayerNorm(mid_channels),
            nn.GELU())
        self.norm = nn.LayerNorm(mid_channels * in_channels) if aggregation_norm else nn.Identity()
        self.linear = nn.Linear(mid_channels * in_channels, out_channels, bias=bias)

    def neighbours(self, pos: Tensor, canvas: Optional[Tuple[int, int]] = None) -> Tensor:
        """``B x N x k`` indices of each token's k nearest tokens (self included)."""
        return self_knn(pos, canvas, self.num_neighbours)

    def forward(self, feat: Tensor, pos: Tensor, canvas: Optional[Tuple[int, int]] = None,
                nbr_idx: Optional[Tensor] = None) -> Tensor:
        b, n, c = feat.shape
        if c != self.in_channels:
            raise ValueError(f'expected {self.in_channels} input channels, got {c}')
        if nbr_idx is None:
            nbr_idx = self.neighbours(pos, canvas)
        posf = pos.to(feat.dtype)
        delta = batched_index_select(posf, nbr_idx) - posf.unsqueeze(2)  # B x N x k x 2
        if self.rel_pos_sign == 'centre_minus_neighbour':
            delta = -delta
        rel = expanded_rel_pos(delta, self.expanded_rel_pos, self.rel_pos_order)
        weights = self.weight_net(rel)  # B x N x k x C_mid
        agg = weighted_neighbour_sum(weights, feat, nbr_idx, self.max_elements)  # B x N x T x C
        return self.linear(self.norm(agg.reshape(b, n, self.mid_channels * c)))
