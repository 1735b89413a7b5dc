"""Adaptive downsampling of AutoFocusFormer: importance scores, grid prior, reserved
tokens, top-x% merging centres and learnable neighbourhood merging."""
from collections import OrderedDict
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ..ops.gather import batched_index_select
from ..ops.knn import knn
from ..ops.space_filling_cluster import CLUSTER_RULES
from ..ops.weighted_aggregation import weighted_neighbour_sum
from ..utils.validation import check_choice


class DownsampleResult(NamedTuple):
    """Output of :class:`AFFAdaptiveDownsample`.

    Attributes:
        feat: ``B x N' x C_out`` merged features.
        pos: ``B x N' x 2`` int64 positions of the merging centres (a subset of the input
            positions, so still integer points of the stride-4 canvas).
        kept_idx: ``B x N'`` int64 indices of the centres among the input tokens
            (ascending; in the official order with ``rules='official'``).
        score: ``B x N`` importance scores ``s = sigmoid(I(f))`` of the input tokens.
    """
    feat: Tensor
    pos: Tensor
    kept_idx: Tensor
    score: Tensor


class AFFAdaptiveDownsample(nn.Module):
    """AutoFocusFormer adaptive downsampling (CVPR 2023, Sec. 3.3, Eq. 4, Fig. 4).

    1. Importance ``s_i = sigmoid(I(f_i))`` with ``I = Linear(C -> 1)`` (``importance``).
    2. Grid prior ``g_i``: with ``t_i`` the distance to the nearest other token rounded up
       to a power of two, ``g_i = 1`` iff ``x_i mod 2t_i = 0`` and ``y_i mod 2t_i = 0``
       (on the full stage-1 grid ``t = 1``). ``grid_prior=False`` sets ``g = 0``.
    3. Reserved tokens: ``x mod 2^(j+1) = 0`` and ``y mod 2^(j+1) = 0`` in stage ``j``
       (1-based; ``2 * stride`` with the official per-stage ``stride = 2^j``) get an
       infinite prior and are always kept, which keeps a coarse grid alive through
       every stage. ``reserve=False`` disables them.
    4. Merging centres: the ``int(N * ds_rate)`` tokens with the highest
       ``g_i + alpha * s_i`` (``s`` detached: selection is not differentiable).
    5. Merging (modified PointConv, Eq. 4) over each centre's attention neighbourhood:

           f_c = U( LN( vec( sum_j  s_j * W(p_j - p_c) f_j^T ) ) )

       ``W`` (``weight_net``) = ``Linear(F -> 4) -> LayerNorm(4) -> GELU`` on the relative
       position features (paper Sec. 4.1, ``C_mid = 4``), ``s_j`` is the **non-detached**
       score (its only gradient path), padded neighbours are masked out, the ``4C``
       vector goes through ``LayerNorm(4C)`` and ``U = Linear(4C -> C_out)`` (``proj``).
       The LayerNorm before ``U`` is not in Eq. 4 but is in the official code (and in its
       parameter count of 6.75M for Mini).

    Selection (``rules='exact'``, default) is the paper's formulation (reserved tokens
    have prior ``+inf`` inside one top-k), and the centres are returned in ascending
    input order. ``rules='official'`` is the official code: the reserved tokens get
    ``-100`` added, the top ``keep - reserve_num`` others are taken by an unsorted
    ``topk`` and the reserved ones (ascending) are appended, in that order; the grid
    prior's adaptive stride is computed in fp32 as there. Both select the same set
    whenever ``keep >= reserve_num``; the order matters because the next stage's
    clustering breaks its ties by input order. Keep and reserve counts depend only on
    ``N`` and the canvas, so every image of a batch keeps the same number.

    Args:
        dim: input channels ``C``.
        out_dim: output channels ``C_out`` (the next stage's width).
        ds_rate: fraction of tokens kept (1/4 or 1/5 in the paper).
        alpha: weight of the learned score against the grid prior (4; 8 for Cityscapes).
        grid_prior: use the adaptive grid prior.
        reserve: keep the coarse-grid tokens.
        rel_pos_dim: relative-position features of the weight net (5 or 2).
        weight_channels: ``C_mid`` of the weight net (4 in the paper).
        max_elements: chunk bound of the neighbourhood aggregation.
        rules: ``'exact'`` or ``'official'`` selection order (see above).
    """

    def __init__(self, dim: int, out_dim: int, ds_rate: float = 0.25, alpha: float = 4.0,
                 grid_prior: bool = True, reserve: bool = True, rel_pos_dim: int = 5,
                 weight_channels: int = 4, max_elements: int = 1 << 22,
                 rules: str = 'exact') -> None:
        super().__init__()
        if not 0.0 < ds_rate <= 1.0:
            raise ValueError(f'ds_rate must be in (0, 1], got {ds_rate}')
        if alpha < 0:
            raise ValueError(f'alpha must be >= 0, got {alpha}')
        check_choice('rules', rules, CLUSTER_RULES)
        self.rules = rules
        self.dim = dim
        self.out_dim = out_dim
        self.ds_rate = ds_rate
        self.alpha = alpha
        self.grid_prior = grid_prior
        self.reserve = reserve
        self.max_elements = max_elements
        self.importance = nn.Linear(dim, 1)
        self.weight_net = nn.Sequential(OrderedDict(
            fc=nn.Linear(rel_pos_dim, weight_channels),
            norm=nn.LayerNorm(weight_channels),
            act=nn.GELU(),
        ))
        self.norm = nn.LayerNorm(weight_channels * dim)
        self.proj = nn.Linear(weight_channels * dim, out_dim)

    def num_kept(self, num_tokens: int) -> int:
        """``int(N * ds_rate)`` (at least 1), identical for every image."""
        return max(1, int(num_tokens * self.ds_rate))

    @torch.no_grad()
    def grid_prior_values(self, pos: Tensor, on_grid: bool) -> Tensor:
        """``B x N`` float in {0, 1}: the adaptive grid prior ``g``."""
        if on_grid:  # full grid: nearest-neighbour distance 1 -> t = 1 -> mod 2
            step = torch.full_like(pos[..., 0], 2)
        else:
            dist, _ = knn(pos, pos, 2)
            d = dist[..., 1].clamp_min(1.0).double()
            step = torch.pow(2.0, torch.ceil(torch.log2(d)) + 1).long()
        return ((pos[..., 0] % step == 0) & (pos[..., 1] % step == 0)).float()

    @staticmethod
    def reserved_mask(pos: Tensor, stride: int) -> Tensor:
        """``B x N`` bool: tokens on the ``2 * stride`` grid of the canvas."""
        return (pos[..., 0] % (2 * stride) == 0) & (pos[..., 1] % (2 * stride) == 0)

    @torch.no_grad()
    def select_official(self, pos: Tensor, score: Tensor, stride: int, on_grid: bool) -> Tensor:
        """Indices ``B x N'`` of the merging centres in the official code's order."""
        b, n = score.shape
        keep = self.num_kept(n)
        if not self.grid_prior:
            grid = score.new_zeros(b, n, dtype=torch.float32)
        elif on_grid:
            grid = ((pos % 2).sum(-1) == 0).float()
        else:
            dist = knn(pos, pos, 2, ties='lowest_index')[0][..., 1]
            ada = 2 ** (dist.log2().ceil() + 1)
            grid = ((pos.long() % ada.unsqueeze(2).long()).sum(-1) == 0).float()
        final = grid + score.detach().float() * self.alpha
        if not self.reserve:
            return final.topk(keep, dim=1, sorted=False)[1]
        reserved = self.reserved_mask(pos, stride)
        counts = reserved.sum(1)
        num_reserved = int(counts[0])
        if bool((counts != num_reserved).any()) or num_reserved > keep:
            raise ValueError(f'rules="official" needs the same number of reserved tokens in '
                             f'every image, at most keep={keep}; got {counts.tolist()}')
        final = final + reserved.float() * -100
        sampled = final.topk(keep - num_reserved, dim=1, sorted=False)[1]
        kept_reserved = reserved.nonzero(as_tuple=True)[1].view(b, num_reserved)
        return torch.cat([sampled, kept_reserved], 1)

    @torch.no_grad()
    def select(self, pos: Tensor, score: Tensor, stride: int, on_grid: bool) -> Tensor:
        """Indices ``B x N'`` of the merging centres (ascending; official order with
        ``rules='official'``)."""
        if self.rules == 'official':
            return self.select_official(pos, score, stride, on_grid)
        keep = self.num_kept(pos.shape[1])
        priority = self.alpha * score.detach().float()
        if self.grid_prior:
            priority = priority + self.grid_prior_values(pos, on_grid)
        if self.reserve:
            priority = priority.masked_fill(self.reserved_mask(pos, stride), float('inf'))
        return priority.topk(keep, dim=1).indices.sort(dim=1).values

    def forward(self, feat: Tensor, pos: Tensor, nbr_idx: Tensor, rel: Tensor,
                nbr_mask: Optional[Tensor], stride: int, on_grid: bool) -> DownsampleResult:
        """
        Args:
            feat: ``B x N x C`` stage output tokens.
            pos: ``B x N x 2`` int64 positions.
            nbr_idx: ``B' x N x M`` attention neighbourhoods (``B'`` = B or 1).
            rel: ``B' x N x M x F`` features of ``p_nbr - p_token``.
            nbr_mask: ``B' x N x M`` bool or None.
            stride: the official per-stage stride ``2^(j)`` (2, 4, 8 for stages 1-3).
            on_grid: the tokens are the full canvas grid (stage 1).
        """
        b, n, c = feat.shape
        score = self.importance(feat).squeeze(-1).sigmoid()  # B x N
        kept = self.select(pos, score, stride, on_grid)  # B x N'
        if nbr_idx.shape[0] == b:
            c_idx = batched_index_select(nbr_idx, kept)  # B x N' x M
            c_rel = batched_index_select(rel, kept)  # B x N' x M x F
            c_mask = None if nbr_mask is None else batched_index_select(nbr_mask, kept)
        else:  # neighbourhoods shared by all images (full grid): index the single copy
            c_idx, c_rel = nbr_idx[0][kept], rel[0][kept]
            c_mask = None if nbr_mask is None else nbr_mask[0][kept]
        weights = self.weight_net(c_rel.to(self.weight_net.fc.weight.dtype))  # B x N' x M x Cmid
        s_nbr = batched_index_select(score.unsqueeze(-1), c_idx)  # B x N' x M x 1 (with grad)
        weights = weights * s_nbr.to(weights.dtype)
        if c_mask is not None:
            weights = weights * c_mask.unsqueeze(-1).to(weights.dtype)
        # B x N' x Cmid x C
        merged = weighted_neighbour_sum(weights, feat, c_idx, self.max_elements)
        out = self.proj(self.norm(merged.flatten(2)))
        return DownsampleResult(out, batched_index_select(pos, kept), kept, score)

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, out_dim={self.out_dim}, ds_rate={self.ds_rate}, '
                f'alpha={self.alpha}, grid_prior={self.grid_prior}, reserve={self.reserve}')
