"""Nearest point tokens of continuous sampling locations, through a per-canvas-cell table.

The point-based deformable attention of AutoFocusFormer (CVPR 2023, Sec. 4.1) samples
every level at ``p = p_c + dp`` from "the 4 tokens closest in Euclidean space to
p_c + dp". With ~10^6 sampling points per layer at 512x1024 a brute-force search per
point is too slow, so, like the official segmentation code
(official ``MSDeformAttnPc``, apple/ml-autofocusformer-segmentation), we build once per forward and per level a
table of the ``K`` nearest level tokens of every integer cell of the stride-4 canvas,
shared by all encoder layers. Then:

* ``mode='exact'`` (default, the paper): a location ``p`` reads the ``K`` candidates of
  its nearest cell ``c`` and keeps the 4 closest to ``p``. This is exact whenever
  ``d_4(p) + |p - c| <= d_K(c)``: a token outside the candidates is at least
  ``d_K(c)`` from ``c``, hence at least ``d_K(c) - |p - c|`` from ``p``. (For ``p``
  outside the canvas the bound is taken at its projection onto the canvas, plus the
  distance to it.) The few locations that fail this certificate (very sparse regions)
  are searched by brute force, so the result always equals an exact kNN (up to the
  order of equidistant tokens).
* ``mode='grid_table'`` (the official code): the 4 nearest tokens of the rounded and
  clamped cell, i.e. an approximate kNN of ``p`` (the weights are still computed at
  ``p``). Use ``num_candidates=4`` with it.

The table itself is exact too, but not built by brute force (``h*w x N`` distances, 1 GiB
for the stride-8 level at 512x1024): tokens are put into square buckets of side ``s``
(about twice the expected distance of the K-th neighbour), a cell looks at the tokens of
the 3x3 buckets around its own, and keeps them when its K-th distance is within the
margin to the border of those buckets (any other token is farther). Cells that fail
(sparse regions) fall back to brute force.

Everything here runs under ``no_grad`` (neighbour choice is discrete); the gradients of
the interpolation reach ``p`` through the distances in the weights.
"""
import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ...ops.gather import batched_index_select
from ...ops.knn import knn
from ...utils.validation import check_choice, check_int

SEARCH_MODES = ('exact', 'grid_table')

#: Default bound on gathered candidate coordinates per chunk.
SEARCH_MAX_ELEMENTS = 1 << 22


class NeighbourTable(NamedTuple):
    """The ``K`` nearest tokens of every cell of an ``h x w`` canvas, for one level.

    Attributes:
        pos: ``B x N x 2`` float token positions (x, y) on the canvas (fp32, or fp64
            for fp64 inputs).
        dist: ``B x (h*w) x K`` ascending Euclidean distances from the cell to its
            candidates (cells in row-major order, cell ``(x, y)`` at ``y * w + x``).
        idx: ``B x (h*w) x K`` int64 token indices.
        cand_planar: ``B x (h*w) x 2 x K`` positions of those tokens, x then y (one
            contiguous row per cell, so a lookup is a single row gather; planar so that
            the distances are built one coordinate at a time without a reduction over
            a size-2 dim). ``cand_pos`` is the ``B x (h*w) x K x 2`` view of it.
        canvas: ``(h, w)``.
        complete: True when ``K`` equals the number of tokens (every token is a candidate).
    """
    pos: Tensor
    dist: Tensor
    idx: Tensor
    cand_planar: Tensor
    canvas: Tuple[int, int]
    complete: bool

    @property
    def cand_pos(self) -> Tensor:
        """``B x (h*w) x K x 2`` candidate positions (a view of ``cand_planar``)."""
        return self.cand_planar.transpose(-1, -2)


def _refine_failed(query: Tensor, failed: Tensor, database: Tensor, k: int,
                   dist: Tensor, idx: Tensor) -> None:
    """Brute-force kNN for the queries flagged in ``failed`` (``B x Q``), written in place.

    The first ``m`` entries of each row after sorting "failed first" are searched (``m``
    = the largest count of failures in an image); rows with fewer failures re-search a
    few certified queries, which gives the same (exact) answer.
    """
    m = int(failed.sum(1).max())
    if m == 0:
        return
    sel = failed.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :m]
    d, i = knn(batched_index_select(query, sel), database, k)
    if dist is not None:
        dist.scatter_(1, sel.unsqueeze(-1).expand(-1, -1, k), d.to(dist.dtype))
    idx.scatter_(1, sel.unsqueeze(-1).expand(-1, -1, k), i)


def _bucketed_cell_knn(cells: Tensor, pos: Tensor, canvas: Tuple[int, int], k: int,
                       max_elements: int) -> Optional[Tuple[Tensor, Tensor]]:
    """Exact k nearest tokens of every canvas cell through 3x3 buckets (see module doc);
    None when the buckets are so crowded that brute force is cheaper."""
    b, n, _ = pos.shape
    h, w = canvas
    dev = pos.device
    s = max(1, math.ceil(2 * math.sqrt(k * h * w / (math.pi * n))))
    nbx, nby = math.ceil(w / s), math.ceil(h / s)
    nb = nbx * nby
    bx = (pos[..., 0] / s).floor().clamp(0, nbx - 1).long()
    by = (pos[..., 1] / s).floor().clamp(0, nby - 1).long()
    bid = by * nbx + bx  # B x N
    counts = torch.zeros(b, nb, dtype=torch.long, device=dev)
    counts.scatter_add_(1, bid, torch.ones_like(bid))
    m = int(counts.max())
    if 9 * m * 2 > n:  # crowded buckets (clustered tokens): brute force is cheaper
        return None
    order = bid.argsort(dim=1, stable=True)
    sorted_bid = bid.gather(1, order)
    start = counts.cumsum(1) - counts  # first slot of each bucket in the sorted order
    rank = torch.arange(n, device=dev).expand(b, -1) - start.gather(1, sorted_bid)
    slots = torch.full((b, nb * m + 1), n, dtype=torch.long, device=dev)  # n = empty
    slots.scatter_(1, sorted_bid * m + rank, order)
    slots = slots[:, :nb * m].view(b, nb, m)
    # candidates of a cell: the tokens of the 3x3 buckets around its bucket
    cbx = (cells[:, 0] / s).floor().long()
    cby = (cells[:, 1] / s).floor().long()
    d = torch.arange(-1, 2, device=dev)
    nbr_x = (cbx.unsqueeze(1) + d.repeat(3)).view(-1, 9)  # C x 9 (dy-major)
    nbr_y = (cby.unsqueeze(1) + d.repeat_interleave(3)).view(-1, 9)
    valid = (nbr_x >= 0) & (nbr_x < nbx) & (nbr_y >= 0) & (nbr_y < nby)
    nbr_bid = torch.where(valid, nbr_y * nbx + nbr_x, torch.full_like(nbr_x, nb))  # nb = none
    # margin: distance from the cell to the border of its 3x3 buckets (inf at the canvas
    # border, beyond which there are no tokens); tokens outside are farther than this
    left = torch.where(cbx >= 1, cells[:, 0] - (cbx - 1) * s, torch.full_like(cells[:, 0], 1e9))
    right = torch.where(cbx + 2 < nbx, (cbx + 2) * s - cells[:, 0],
                        torch.full_like(cells[:, 0], 1e9))
    top = torch.where(cby >= 1, cells[:, 1] - (cby - 1) * s, torch.full_like(cells[:, 1], 1e9))
    bottom = torch.where(cby + 2 < nby, (cby + 2) * s - cells[:, 1],
                         torch.full_like(cells[:, 1], 1e9))
    margin = torch.stack([left, right, top, bottom], -1).min(-1).values  # C

    slots_ext = torch.cat([slots, torch.full((b, 1, m), n, dtype=torch.long, device=dev)], 1)
    pos_ext = torch.cat([pos, torch.full((b, 1, 2), float('inf'), dtype=pos.dtype, device=dev)],
                        1)
    num_cells = cells.shape[0]
    dist = pos.new_empty(b, num_cells, k)
    idx = torch.empty(b, num_cells, k, dtype=torch.long, device=dev)
    chunk = max(1, min(num_cells, max_elements // max(1, b * 9 * m * 2)))
    for c0 in range(0, num_cells, chunk):
        c1 = min(num_cells, c0 + chunk)
        cand = batched_index_select(slots_ext, nbr_bid[c0:c1].unsqueeze(0).expand(b, -1, -1))
        cand = cand.view(b, c1 - c0, 9 * m)  # token indices, n = empty
        cp = batched_index_select(pos_ext, cand)  # B x c x 9m x 2
        d2 = (cp - cells[c0:c1].to(pos.dtype).view(1, -1, 1, 2)).square_().sum(-1)
        d2 = torch.nan_to_num_(d2, nan=float('inf'))  # inf - x for empty slots
        kk = min(k, 9 * m)
        val, sel = d2.topk(kk, dim=-1, largest=False, sorted=True)
        if kk < k:  # fewer candidates than k: leave the rest to the brute-force pass
            val = torch.cat([val, val.new_full((b, c1 - c0, k - kk), float('inf'))], -1)
            sel = torch.cat([sel, sel[..., :1].expand(-1, -1, k - kk)], -1)
        dist[:, c0:c1] = val.sqrt_()
        idx[:, c0:c1] = cand.gather(-1, sel)
    failed = ~(dist[..., -1] <= margin.to(dist.dtype).unsqueeze(0))  # also catches inf/nan
    _refine_failed(cells.to(pos.dtype).unsqueeze(0).expand(b, -1, -1), failed, pos, k, dist, idx)
    return dist, idx


@torch.no_grad()
def build_neighbour_table(pos: Tensor, canvas: Tuple[int, int], num_candidates: int,
                          max_elements: int = 1 << 22,
                          brute_force_below: int = 1 << 22) -> NeighbourTable:
    """K nearest tokens (``K = min(num_candidates, N)``) of every integer canvas cell.

    Args:
        pos: ``B x N x 2`` token positions (x, y) in canvas units (int or float).
        canvas: ``(h, w)`` of the canvas; cells are the integer points ``0..w-1 x 0..h-1``.
        num_candidates: K.
        max_elements: chunk bound of the distance computations.
        brute_force_below: use a plain chunked kNN when ``h * w * N`` is below this (small
            problems) or when the tokens crowd into a few buckets, the bucketed search
            otherwise. Both are exact.
    """
    check_int('num_candidates', num_candidates)
    b, n, _ = pos.shape
    h, w = canvas
    k = min(num_candidates, n)
    ys, xs = torch.meshgrid(torch.arange(h, device=pos.device), torch.arange(w, device=pos.device),
                            indexing='ij')
    cells = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
    posf = pos.to(torch.promote_types(pos.dtype, torch.float32)) if pos.is_floating_point() \
        else pos.float()
    cells = cells.to(posf.dtype)
    found = None
    if h * w * n >= brute_force_below and k < n:
        found = _bucketed_cell_knn(cells, posf, (h, w), k, max_elements)
    if found is None:
        found = knn(cells.unsqueeze(0).expand(b, -1, -1), posf, k, max_elements)
    dist, idx = found
    planar = batched_index_select(posf, idx).transpose(-1, -2).contiguous()
    return NeighbourTable(posf, dist, idx, planar, (h, w), k == n)


def _project(loc: Tensor, canvas: Tuple[int, int]) -> Tensor:
    """Closest point of the canvas rectangle ``[0, w-1] x [0, h-1]``."""
    h, w = canvas
    return torch.stack([loc[..., 0].clamp(0, w - 1), loc[..., 1].clamp(0, h - 1)], -1)


def _nearest_cell(loc: Tensor, canvas: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Rounded, clamped cell of each location: (``B x S`` linear index, ``B x S x 2`` cell)."""
    h, w = canvas
    cx = loc[..., 0].round().clamp_(0, w - 1)
    cy = loc[..., 1].round().clamp_(0, h - 1)
    lin = cy.long() * w + cx.long()
    return lin, torch.stack([cx, cy], -1)


def _sqdist_to(pos: Tensor, idx: Tensor, loc: Tensor) -> Tensor:
    """``|loc - pos[idx]|^2``: ``B x S x k`` for ``idx`` ``B x S x k`` (same arithmetic as
    :func:`~fusion_necks.ops.inverse_distance_weights`)."""
    return (batched_index_select(pos, idx) - loc.unsqueeze(2)).square().sum(-1)


@torch.no_grad()
def nearest_tokens(loc: Tensor, table: NeighbourTable, k: int = 4, mode: str = 'exact',
                   max_elements: int = SEARCH_MAX_ELEMENTS, return_sqdist: bool = False):
    """Indices of the ``k`` tokens nearest to each continuous location.

    Args:
        loc: ``B x S x 2`` float locations (x, y) in canvas units; may lie outside the canvas.
        table: the level's :class:`NeighbourTable` (``K >= k`` candidates).
        k: neighbours per location (4 in the paper).
        mode: ``'exact'`` (paper) or ``'grid_table'`` (official approximation), see the
            module docstring.
        max_elements: bound on ``B * chunk * K * 2`` gathered coordinates per chunk.

        return_sqdist: also return the squared distances from each location to its
            neighbours (the values the search computed anyway), so that inference can
            weight them without gathering and measuring again.

    Returns:
        ``B x S x k`` int64 indices into the level's tokens (nearest first in ``'exact'``
        mode; in the cell's order in ``'grid_table'`` mode), or ``(indices, sqdist)``
        with ``return_sqdist`` (``sqdist`` bitwise equal to ``|loc - pos[idx]|^2``
        computed as :func:`~fusion_necks.ops.inverse_distance_weights` does).
    """
    check_choice('mode', mode, SEARCH_MODES)
    kk = table.idx.shape[-1]
    if not 1 <= k <= kk:
        raise ValueError(f'k must be in [1, {kk}] (the table holds {kk} candidates), got {k}')
    b, s, _ = loc.shape
    loc = loc.detach().to(table.pos.dtype)
    out = torch.empty(b, s, k, dtype=torch.long, device=loc.device)
    out_d2 = None
    if return_sqdist and mode == 'exact':
        out_d2 = torch.empty(b, s, k, dtype=loc.dtype, device=loc.device)
    flat_idx = table.idx.reshape(b, -1)  # B x (h*w*K)
    chunk = max(1, min(s, max_elements // max(1, b * kk * 2)))
    failed = []
    for start in range(0, s, chunk):
        end = min(s, start + chunk)
        lc = loc[:, start:end]
        lin, cell = _nearest_cell(lc, table.canvas)
        if mode == 'grid_table':
            out[:, start:end] = batched_index_select(table.idx, lin)[..., :k]
            continue
        cp = batched_index_select(table.cand_planar, lin)  # B x c x 2 x K
        d2 = torch.sub(cp[:, :, 0], lc[..., 0:1]).square_()  # B x c x K
        d2.add_(torch.sub(cp[:, :, 1], lc[..., 1:2]).square_())
        d2k, order = d2.topk(k, dim=-1, largest=False, sorted=True)
        # gather only the k chosen indices of the cell's row (not all K)
        pick = (lin.unsqueeze(-1) * kk + order).view(b, -1)
        out[:, start:end] = flat_idx.gather(1, pick).view(b, -1, k)
        if out_d2 is not None:
            out_d2[:, start:end] = d2k
        if not table.complete:
            # certificate (module docstring), with p first projected onto the canvas
            # rectangle q (tokens lie inside it): any token t has |t-p|^2 >= |t-q|^2 +
            # |p-q|^2, and a non-candidate has |t-q| >= d_K(c) - |q-c|
            dk_cell = batched_index_select(table.dist[..., -1:], lin).squeeze(-1)  # B x c
            proj = _project(lc, table.canvas)
            bound = (dk_cell - (proj - cell).norm(dim=-1)).clamp_(min=0).square_() + \
                (lc - proj).square().sum(-1)
            failed.append(d2k[..., -1] > bound)
    if failed:
        fail = torch.cat(failed, 1)
        _refine_failed(loc, fail, table.pos, k, None, out)
        if out_d2 is not None and bool(fail.any()):
            bi, si = fail.nonzero(as_tuple=True)
            nbr = table.pos[bi.unsqueeze(-1), out[bi, si]]  # F x k x 2
            out_d2[bi, si] = (nbr - loc[bi, si].unsqueeze(1)).square().sum(-1)
    if not return_sqdist:
        return out
    if out_d2 is None:  # grid_table: the distances were not needed for the choice
        out_d2 = _sqdist_to(table.pos, out, loc)
    return out, out_d2
