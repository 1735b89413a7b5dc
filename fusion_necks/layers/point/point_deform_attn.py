"""Point-based multi-scale deformable attention (AutoFocusFormer, CVPR 2023, Sec. 4.1).

Deformable DETR's multi-scale deformable attention (Zhu et al., ICLR 2021) lets a query
at ``p_c`` attend to ``P`` sampling locations ``p = p_c + dp`` on each of ``L`` levels,
reading each location by bilinear interpolation of a 2x2 patch. On point tokens there
is no patch: AutoFocusFormer "gathers the 4 tokens closest in Euclidean space to
p_c + dp, and uses the inverse of their distances to p_c + dp raised to the learned
power for a weighted average of their features (weights sum normalized to 1)", with the
power learnable and initialised at 6. Per head ``h``:

    out_h(q) = sum_{l, p} A_{h,l,p}(q) sum_{j in 4NN_l(loc)} w_j(loc) V_h(token_j),
    loc = p_c(q) + dp_{h,l,p}(q),   w_j = |loc - p_j|^-power / sum_j' |loc - p_j'|^-power

``A = softmax`` over the ``L * P`` samples of the head, as in Deformable DETR. The sum is
one chunked weighted gather over the concatenated value tokens
(:func:`~fusion_necks.ops.weighted_gather`, the official ``msdetrpc`` kernel), so the
``B x Nq x heads x L*P*4 x C_h`` gathered values never exist.
"""
import math
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor, nn

from ...ops.gather import batched_index_select
from ...ops.inverse_distance import inverse_distance_weights, inverse_sqdist_weights
from ...ops.weighted_aggregation import AGG_MAX_ELEMENTS, weighted_gather
from ...utils.validation import check_choice, check_int
from .point_neighbour_search import (SEARCH_MODES, NeighbourTable, build_neighbour_table,
                                     nearest_tokens)

OFFSET_UNITS = ('canvas', 'level')


class SamplingLevels(NamedTuple):
    """The value levels a point deformable attention samples from (shared by all layers).

    Attributes:
        tables: one :class:`NeighbourTable` per level (its ``pos`` are the level's tokens).
        starts: index of each level's first token in the concatenated value tensor.
        factors: each level's nominal stride in canvas units (1, 2, 4, 8 for strides
            4, 8, 16, 32), used by ``offset_units='level'``.
    """
    tables: List[NeighbourTable]
    starts: List[int]
    factors: List[float]


def build_sampling_levels(positions: Sequence[Tensor], canvas: Tuple[int, int],
                          factors: Sequence[float], num_candidates: int = 16) -> SamplingLevels:
    """Neighbour tables of the value levels (``positions[l]``: ``B x N_l x 2``)."""
    tables = [build_neighbour_table(p, canvas, num_candidates) for p in positions]
    starts, s = [], 0
    for p in positions:
        starts.append(s)
        s = s + int(p.shape[1])  # int(): under jit tracing sizes are tensors
    return SamplingLevels(tables, starts, [float(f) for f in factors])


class PointMSDeformAttn(nn.Module):
    """Multi-scale deformable attention on point tokens (AFF Sec. 4.1).

    Layers and initialisation are Deformable DETR's (mmcv ``MultiScaleDeformableAttention``):
    ``sampling_offsets = Linear(C, heads*L*P*2)`` (zero weight, bias on a ring of
    directions scaled by ``i+1`` for point ``i``), ``attention_weights = Linear(C,
    heads*L*P)`` (zero), ``value_proj`` and ``output_proj`` (Xavier-uniform). The bilinear
    sampler is replaced by inverse-distance interpolation from the ``num_neighbours``
    nearest tokens with a learnable ``power`` (one scalar per layer).

    Args:
        embed_dims: C.
        num_heads: attention heads (C must be divisible by it).
        num_levels: L, value levels.
        num_points: P, sampling points per head and level.
        num_neighbours: tokens interpolated per sampling point (4 in the paper).
        power: initial inverse-distance power on the distance (6 in the paper; the
            official code learns ``beta = power / 2`` on squared distances, the same
            function).
        learnable_power: learn the power (paper) or keep it fixed.
        offset_units: ``'canvas'`` (default, as the official code): offsets are in
            stride-4 canvas units at every level; ``'level'``: in units of each level's
            own stride (Deformable DETR's normalisation by the level size). The paper
            does not say.
        neighbour_search: ``'exact'`` (default, the paper's "4 tokens closest") or
            ``'grid_table'`` (the official approximation: the 4 tokens nearest to the
            rounded location), see :mod:`.point_neighbour_search`.
        dropout: dropout on the output (before the caller's residual).
        max_elements: chunk bound of the weighted gather.

    Shapes (``forward``): ``query``, ``query_pos`` ``B x Nq x C``; ``ref_pos`` ``B x Nq x
    2`` canvas positions of the queries; ``value`` ``B x Nv x C`` with ``Nv = sum_l N_l``
    (levels concatenated in the order of ``levels``). Returns ``B x Nq x C`` (no residual).
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 3,
                 num_points: int = 4, num_neighbours: int = 4, power: float = 6.0,
                 learnable_power: bool = True, offset_units: str = 'canvas',
                 neighbour_search: str = 'exact', dropout: float = 0.0,
                 max_elements: int = AGG_MAX_ELEMENTS) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} must be divisible by num_heads={num_heads}')
        for name, v in (('num_levels', num_levels), ('num_points', num_points),
                        ('num_neighbours', num_neighbours)):
            check_int(name, v)
        check_choice('offset_units', offset_units, OFFSET_UNITS)
        check_choice('neighbour_search', neighbour_search, SEARCH_MODES)
        if power <= 0:
            raise ValueError(f'power must be > 0, got {power}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.num_neighbours = num_neighbours
        self.offset_units = offset_units
        self.neighbour_search = neighbour_search
        self.max_elements = max_elements
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.power_init = float(power)
        if learnable_power:
            self.power = nn.Parameter(torch.tensor(float(power)))
        else:
            self.register_buffer('power', torch.tensor(float(power)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's initialisation (mmcv ``MultiScaleDeformableAttention``) and
        the initial power."""
        with torch.no_grad():
            self.power.fill_(self.power_init)
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi /
                                                                      self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def sampling_locations(self, query: Tensor, ref_pos: Tensor,
                           levels: SamplingLevels) -> Tensor:
        """``B x Nq x heads x L x P x 2`` sampling locations in canvas units."""
        b, nq, _ = query.shape
        off = self.sampling_offsets(query).view(b, nq, self.num_heads, self.num_levels,
                                                self.num_points, 2)
        if self.offset_units == 'level':
            off = off * off.new_tensor(levels.factors).view(1, 1, 1, -1, 1, 1)
        return ref_pos.to(off.dtype).view(b, nq, 1, 1, 1, 2) + off

    def forward(self, query: Tensor, query_pos: Tensor, ref_pos: Tensor, value: Tensor,
                levels: SamplingLevels) -> Tensor:
        b, nq, c = query.shape
        nh, nl, npt, k = self.num_heads, self.num_levels, self.num_points, self.num_neighbours
        if len(levels.tables) != nl:
            raise ValueError(f'expected {nl} value levels, got {len(levels.tables)}')
        q = query + query_pos
        loc = self.sampling_locations(q, ref_pos, levels)  # B x Nq x H x L x P x 2
        attn = self.attention_weights(q).view(b, nq, nh, nl * npt).softmax(-1)
        attn = attn.view(b, nq, nh, nl, npt)
        v = self.value_proj(value).view(b, -1, nh, c // nh)

        nv = v.shape[1]
        # rows of L*P*k samples per (image, head, query); the indices address the
        # flattened (B*H*Nv) value rows directly, so the gather adds no batch offset
        need_grad = torch.is_grad_enabled() and (loc.requires_grad or self.power.requires_grad
                                                 or attn.requires_grad)
        # int32 rows while they fit: half the index memory, faster gathers
        idx_dtype = torch.int32 if b * nh * nv < 2 ** 31 else torch.long
        i_all = torch.empty(b, nh, nq, nl, npt, k, dtype=idx_dtype, device=query.device)
        head_base = (torch.arange(b * nh, device=query.device) * nv).view(b, nh, 1, 1, 1)
        w_all = None if need_grad else attn.new_empty(
            b, nh, nq, nl, npt, k, dtype=torch.promote_types(attn.dtype, loc.dtype))
        weights: List[Tensor] = []
        for lvl, table in enumerate(levels.tables):
            loc_l = loc[:, :, :, lvl].reshape(b, nq * nh * npt, 2)
            if need_grad:
                idx = nearest_tokens(loc_l, table, k, self.neighbour_search)  # B x S x k
                nbr_pos = batched_index_select(table.pos.to(loc_l.dtype), idx)  # B x S x k x 2
                w = inverse_distance_weights(loc_l, nbr_pos, power=self.power)  # B x S x k
            else:  # inference: reuse the distances the search measured (same numbers)
                idx, d2 = nearest_tokens(loc_l, table, k, self.neighbour_search,
                                         return_sqdist=True)
                w = inverse_sqdist_weights(d2.to(loc_l.dtype), power=self.power)
            w = w.view(b, nq, nh, npt, k).permute(0, 2, 1, 3, 4)  # B x H x Nq x P x k
            a_l = attn[:, :, :, lvl].permute(0, 2, 1, 3).unsqueeze(-1)  # B x H x Nq x P x 1
            if need_grad:
                weights.append(w * a_l)
            else:  # written in place into the sample rows (no stack / permute copies)
                torch.mul(w, a_l, out=w_all[:, :, :, lvl])
            torch.add(idx.view(b, nq, nh, npt, k).permute(0, 2, 1, 3, 4),
                      head_base + levels.starts[lvl], out=i_all[:, :, :, lvl])
        if need_grad:
            w_all = torch.stack(weights, 3)
        v_rows = v.permute(0, 2, 1, 3).reshape(1, b * nh * nv, c // nh)
        out = weighted_gather(w_all.reshape(1, b * nh * nq, -1).to(v_rows.dtype), v_rows,
                              i_all.view(1, b * nh * nq, -1), self.max_elements)
        out = out.view(b, nh, nq, c // nh).permute(0, 2, 1, 3).reshape(b, nq, c)
        return self.dropout(self.output_proj(out))
