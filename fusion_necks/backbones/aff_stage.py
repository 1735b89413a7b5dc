"""One AutoFocusFormer stage: balanced clustering, neighbourhoods, blocks, downsampling."""
import math
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..ops.gather import batched_index_select
from ..ops.knn import knn
from ..ops.point_features import PointFeatures
from ..ops.rel_pos_features import expanded_rel_pos, rel_pos_dim
from ..ops.space_filling_cluster import CLUSTER_RULES, space_filling_cluster
from ..utils.validation import check_choice, check_int
from .aff_block import AFFBlock
from .aff_downsample import AFFAdaptiveDownsample, DownsampleResult


class Neighbourhoods(NamedTuple):
    """Token neighbourhoods of one stage (shared by its blocks and its downsampling).

    Attributes:
        order: ``B' x N`` permutation applied to the stage's tokens (curve order), or
            None when the stage attends globally and keeps the input order.
        pos: ``B' x N x 2`` int64 positions after reordering.
        idx: ``B' x N x M`` int64 neighbours of each (reordered) token.
        mask: ``B' x N x M`` bool (False on padding) or None.
        rel: ``B' x N x M x F`` relative-position features of ``p_nbr - p_token``.

    ``B'`` is 1 on the full stage-1 grid (identical for every image), ``B`` otherwise.
    """
    order: Optional[Tensor]
    pos: Tensor
    idx: Tensor
    mask: Optional[Tensor]
    rel: Tensor


class AFFStage(nn.Module):
    """An AutoFocusFormer stage (CVPR 2023, Sec. 3.1-3.3; official ``BasicLayer``).

    1. Balanced space-filling clustering of the token positions into clusters of
       ``cluster_size`` and physical reordering of the tokens into curve order.
    2. Neighbourhoods: each token attends to the members of its ``round(nbhd_size /
       cluster_size)`` nearest clusters (Euclidean distance from the token to the
       cluster mean positions), i.e. ``M = nnc * cluster_size`` neighbours; padding of
       the last cluster is masked. When ``nbhd_size >= N`` the stage attends globally
       (no clustering, no reordering), as the official code does.
    3. ``depth`` :class:`AFFBlock` s sharing these neighbourhoods.
    4. Optional :class:`AFFAdaptiveDownsample` to the next stage's width.

    On the full stage-1 grid the neighbourhoods depend only on the canvas size, so they
    are computed once per ``(h, w, device)`` for a single image, cached, and broadcast
    over the batch (unlike the official cache, keyed by nothing, this is safe for any
    input size and batch size).

    Args:
        dim: channels of the stage.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP ratio.
        cluster_size: ``m``.
        nbhd_size: target neighbourhood size (rounded to a multiple of ``m``).
        drop_path: per-block stochastic-depth rates (length ``depth``).
        layer_scale: layer-scale init (0 = off).
        blank_token: blank key/value in the attention.
        expanded_rel_pos: 5 expanded relative-position features (else ``(dx, dy)``).
        rel_pos_order: ``'paper'`` or ``'official'`` order of the expanded features.
        drop: dropout rate.
        downsample: kwargs of :class:`AFFAdaptiveDownsample` (must hold ``out_dim``) or
            None for the last stage.
        max_elements: chunk bound of the point ops.
        with_cp: activation checkpointing of every block during training (recomputes the
            block in the backward pass; saves memory at large inputs).
        rules: ``'exact'`` (default: deterministic, batch-invariant) or ``'official'``:
            the official code's four rules, so that its checkpoints give its outputs:
            clustering order from its fp32 sort key
            (:func:`~fusion_necks.ops.space_filling_cluster`), kNN ties to the lowest
            cluster index (:func:`~fusion_necks.ops.knn`), padded slots masked by an
            additive ``-100`` (:func:`~fusion_necks.ops.nbhd_attention`) and the
            merging centres in its ``[topk..., reserved...]`` order
            (:class:`AFFAdaptiveDownsample`).
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, mlp_ratio: float,
                 cluster_size: int, nbhd_size: int, drop_path: Sequence[float],
                 layer_scale: float = 0.0,
                 blank_token: bool = True, expanded_rel_pos: bool = True,
                 rel_pos_order: str = 'paper', drop: float = 0.0,
                 downsample: Optional[dict] = None, max_elements: int = 1 << 22,
                 with_cp: bool = False, rules: str = 'exact') -> None:
        super().__init__()
        check_choice('rules', rules, CLUSTER_RULES)
        self.rules = rules
        official = rules == 'official'
        self.knn_ties = 'lowest_index' if official else 'topk'
        mask_value = -100.0 if official else None
        check_int('cluster_size', cluster_size)
        if nbhd_size < cluster_size:
            raise ValueError(f'nbhd_size ({nbhd_size}) must be >= cluster_size ({cluster_size})')
        if len(drop_path) != depth:
            raise ValueError(f'drop_path must have depth={depth} rates, got {len(drop_path)}')
        self.dim = dim
        self.with_cp = with_cp
        self.cluster_size = cluster_size
        self.nbhd_size = nbhd_size
        self.expanded_rel_pos = expanded_rel_pos
        self.rel_pos_order = rel_pos_order
        f = rel_pos_dim(expanded_rel_pos)
        self.blocks = nn.ModuleList([
            AFFBlock(dim, num_heads, mlp_ratio, rel_pos_dim=f, blank_token=blank_token,
                     drop=drop, drop_path=drop_path[i], layer_scale=layer_scale,
                     max_elements=max_elements, mask_value=mask_value) for i in range(depth)
        ])
        self.downsample = None if downsample is None else AFFAdaptiveDownsample(
            dim, rel_pos_dim=f, max_elements=max_elements, rules=rules, **downsample)
        self._grid_cache: Dict[tuple, Neighbourhoods] = {}

    def num_neighbour_clusters(self, num_tokens: int) -> int:
        k = math.ceil(num_tokens / self.cluster_size)
        return max(1, min(int(round(self.nbhd_size / self.cluster_size)), k))

    def _rel(self, delta: Tensor) -> Tensor:
        return expanded_rel_pos(delta, self.expanded_rel_pos, self.rel_pos_order)

    @torch.no_grad()
    def build_neighbourhoods(self, pos: Tensor, canvas_hw: Tuple[int, int]) -> Neighbourhoods:
        """Cluster ``B x N x 2`` positions and find every token's neighbours."""
        b, n, _ = pos.shape
        if self.nbhd_size >= n:  # global attention, input order kept
            idx = torch.arange(n, device=pos.device).view(1, 1, n).expand(b, n, n)
            rel = self._rel(pos.unsqueeze(1) - pos.unsqueeze(2))
            return Neighbourhoods(None, pos, idx, None, rel)
        m = self.cluster_size
        cl = space_filling_cluster(pos, m, canvas_hw, self.rules)
        pos = batched_index_select(pos, cl.order)
        nnc = self.num_neighbour_clusters(n)
        _, near = knn(pos, cl.cluster_mean_pos, nnc, ties=self.knn_ties)  # B x N x nnc
        idx = (near.unsqueeze(-1) * m + torch.arange(m, device=pos.device)).flatten(2)
        valid = idx < n
        mask = None
        if not bool(valid.all()):
            mask = valid
            idx = idx.masked_fill(~valid, 0)
        rel = self._rel(batched_index_select(pos, idx) - pos.unsqueeze(2))
        return Neighbourhoods(cl.order, pos, idx, mask, rel)

    def neighbourhoods(self, pos: Tensor, canvas_hw: Tuple[int, int],
                       on_grid: bool) -> Neighbourhoods:
        if not on_grid:
            return self.build_neighbourhoods(pos, canvas_hw)
        key = (int(canvas_hw[0]), int(canvas_hw[1]), pos.device, self.cluster_size,
               self.nbhd_size, self.expanded_rel_pos, self.rel_pos_order, self.rules)
        nb = self._grid_cache.get(key)
        if nb is None:
            if len(self._grid_cache) >= 4:
                self._grid_cache.pop(next(iter(self._grid_cache)))
            nb = self.build_neighbourhoods(pos[:1], canvas_hw)
            self._grid_cache[key] = nb
        return nb

    def forward(self, tokens: PointFeatures,
                on_grid: bool = False) -> Tuple[PointFeatures, Optional[DownsampleResult]]:
        """
        Args:
            tokens: the stage's input tokens, ``feat`` ``B x N x C``, ``pos`` ``B x N x 2``
                int64 canvas positions.
            on_grid: the tokens are the full canvas in row-major order (stage 1).

        Returns:
            The stage's tokens in its clustering order (same ``stride``, un-normed), and
            the downsampled tokens with their scores (None for the last stage).
        """
        feat, pos, canvas_hw = tokens.feat, tokens.pos, tokens.canvas
        b = feat.shape[0]
        nb = self.neighbourhoods(pos, canvas_hw, on_grid)
        if nb.order is not None:
            order = nb.order if nb.order.shape[0] == b else nb.order.expand(b, -1)
            feat = batched_index_select(feat, order)
        pos = nb.pos if nb.pos.shape[0] == b else nb.pos.expand(b, -1, -1)
        # neighbourhoods of whole clusters over tokens in clustering order (not global
        # attention): inference gathers keys once per cluster
        clusters = None if nb.order is None else self.cluster_size
        for blk in self.blocks:
            if self.with_cp and self.training and feat.requires_grad:
                feat = checkpoint(blk, feat, nb.idx, nb.rel, nb.mask, use_reentrant=False)
            else:
                feat = blk(feat, nb.idx, nb.rel, nb.mask, clusters)
        down = None
        if self.downsample is not None:
            # the official per-stage stride 2^j of stage j (1-based) is the next stage's
            # token spacing on the canvas: 2 x this stage's (the stride rule of PointFeatures)
            down = self.downsample(feat, pos, nb.idx, nb.rel, nb.mask, 2 * tokens.spacing,
                                   on_grid)
        return tokens._replace(feat=feat, pos=pos, grid=None), down

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, cluster_size={self.cluster_size}, nbhd_size={self.nbhd_size}, '
                f'rules={self.rules!r}')
