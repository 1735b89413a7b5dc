"""Balanced clustering of 2-D point tokens with a space-filling curve.

AutoFocusFormer, Ziwen et al., CVPR 2023, Sec. 3.1.1 and Fig. 3; official details in
the official ``point_utils.py::space_filling_cluster`` (apple/ml-autofocusformer). Not iterative, exactly balanced:

1. Cover the ``h x w`` canvas with a coarse grid of ``Ph x Pw`` cells whose count is close
   to the number of clusters ``k = ceil(n / m)``; the cell centres are the *anchors*.
2. Order the anchors along a boustrophedon (snake) scan: row by row, left-to-right on
   even rows, right-to-left on odd rows (what the official code uses by default).
3. A token belongs to the cell containing it. Inside a cell, tokens are ordered by the
   paper's Eq. (1) ratio ``r = |p - a_prev|^2 / (|p - a_next|^2 + 1e-5)`` (squared
   distances, as the official code), so tokens near the previous anchor come first.
   The first and last anchors get a phantom neighbour extrapolated along the curve.
4. The ordered sequence is cut into consecutive chunks of ``m``: cluster ``j`` is tokens
   ``[j*m, (j+1)*m)`` of the sorted order; only the last cluster can be short, and its
   missing slots are padding (index 0, mask False).

Differences from the official code (all deliberate, documented in docs/autofocusformer.md):

* Sorting is lexicographic on ``(curve rank, ratio)`` with stable sorts, instead of the
  float key ``rank * (max_ratio + 1) + ratio`` where ``max_ratio`` is taken over the
  whole batch: same order up to fp32 rounding, but exact and independent of the
  other images in the batch.
* Cell assignment uses exact integer arithmetic ``floor(x * Pw / w)`` when the
  positions are integers (the official ``floor(x / (w / Pw))`` can round across a
  cell border).
* Fewer than 3 anchors (tiny inputs) do not crash: with 2 anchors the phantoms are
  extrapolated from the pair, with 1 anchor they are placed one cell to its left and
  right.

``rules='official'`` reproduces the official order instead (to get the official
network's outputs from its checkpoints): positions, anchors, cell assignment
``floor(p / cell)`` and the ratio in fp32 with the official operations, then one
``sort`` of the fp32 key ``rank * (max_ratio + 1) + ratio``, ``max_ratio`` taken over
the whole batch. fp32 rounding of that key merges close ratios of high-rank cells
into ties, which ``sort`` breaks by its own (input-order dependent) rule; and the
batch-wide ``max_ratio`` makes an image's order depend on the other images of its
batch. Both are why the default is the exact reading.
"""
import math
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from ..utils.validation import check_choice, check_int


class Clustering(NamedTuple):
    """Result of :func:`space_filling_cluster`.

    Attributes:
        order: ``B x N`` int64, ``pos_sorted = pos[order]`` (token rank -> old index).
        cluster_mean_pos: ``B x K x 2`` float, mean position of the valid members of each
            cluster, in the sorted token order.
        member_idx: ``B x K x M`` int64 indices into the *sorted* tokens; padded slots of
            the last cluster point to token 0.
        member_mask: ``B x K x M`` bool (False on padding) or None if ``N % M == 0``.
    """
    order: Tensor
    cluster_mean_pos: Tensor
    member_idx: Tensor
    member_mask: Optional[Tensor]


def anchor_grid(num_tokens: int, cluster_size: int, canvas_hw: Tuple[int, int]) -> Tuple[int, int]:
    """Anchor grid ``(Ph, Pw)``: side ``L = sqrt(h*w/k)``, ``Ph = round(h/L)``, ``Pw = round(w/L)``.

    Python's ``round`` (half to even) as in the official code; at least one cell per axis.
    """
    h, w = canvas_hw
    k = math.ceil(num_tokens / cluster_size)
    side = math.sqrt(h * w / k)
    return max(1, int(round(h / side))), max(1, int(round(w / side)))


def snake_rank(ph: int, pw: int, device=None) -> Tensor:
    """``Ph x Pw`` int64: position of each anchor cell along the boustrophedon curve."""
    iy = torch.arange(ph, device=device).view(ph, 1)
    ix = torch.arange(pw, device=device).view(1, pw)
    col = torch.where(iy % 2 == 0, ix, pw - 1 - ix)
    return iy * pw + col


def _anchor_neighbours(ph: int, pw: int, cell_hw: Tuple[float, float],
                       device) -> Tuple[Tensor, Tensor]:
    """Previous and next anchor position (x, y) for every curve rank, ``P x 2`` each."""
    lh, lw = cell_hw
    num = ph * pw
    rank = snake_rank(ph, pw, device).view(-1)
    iy, ix = torch.meshgrid(torch.arange(ph, device=device, dtype=torch.float64),
                            torch.arange(pw, device=device, dtype=torch.float64), indexing='ij')
    centres = torch.stack([(ix.reshape(-1) + 0.5) * lw - 0.5,
                           (iy.reshape(-1) + 0.5) * lh - 0.5], -1)
    anchors = torch.empty_like(centres)
    anchors[rank] = centres  # anchors in curve order
    if num == 1:
        step = torch.tensor([lw, 0.0], dtype=anchors.dtype, device=device)
        first_step = last_step = step
    else:
        first_step = anchors[1] - anchors[0]
        last_step = anchors[-1] - anchors[-2]
    prev = torch.cat([(anchors[0] - first_step).unsqueeze(0), anchors[:-1]], 0)
    nxt = torch.cat([anchors[1:], (anchors[-1] + last_step).unsqueeze(0)], 0)
    return prev, nxt


#: Readings of the clustering order: exact (default) or the official code's.
CLUSTER_RULES = ('exact', 'official')


def _official_order(pos: Tensor, ph: int, pw: int, canvas_hw: Tuple[int, int]) -> Tensor:
    """The official ``space_filling_cluster`` order, operation for operation in fp32."""
    h, w = canvas_hw
    device = pos.device
    p = pos.to(torch.float32)
    cell = torch.tensor([w / pw, h / ph], dtype=torch.float32, device=device)
    rank = snake_rank(ph, pw, device).view(-1)
    iy, ix = torch.meshgrid(torch.arange(ph, device=device), torch.arange(pw, device=device),
                            indexing='ij')
    grid = torch.stack([ix.reshape(-1), iy.reshape(-1)], -1)
    ordered = torch.empty_like(grid)
    ordered[rank] = grid  # cells in curve order
    means = ordered * cell + cell / 2 - 0.5  # fp32, as the official anchors
    num = means.shape[0]
    if num >= 3:
        prev = torch.cat([(means[0] - (means[1] - means[0])).unsqueeze(0), means[:-1]], 0)
        nxt = torch.cat([means[1:], (means[-1] + (means[-1] - means[-2])).unsqueeze(0)], 0)
    else:  # the official code needs 3 anchors; extrapolate as the exact reading does
        prev, nxt = (t.to(torch.float32) for t in _anchor_neighbours(ph, pw, (h / ph, w / pw),
                                                                      device))
    assign = (p / cell).floor()
    cx = assign[..., 0].long().clamp_(0, pw - 1)
    cy = assign[..., 1].long().clamp_(0, ph - 1)
    r = rank.view(ph, pw)[cy, cx]  # B x N
    d_prev = (p - prev[r]).pow(2).sum(-1)
    d_next = (p - nxt[r]).pow(2).sum(-1)
    ratio = d_prev / (d_next + 1e-5)
    key = r.to(torch.float32) * (ratio.max() + 1) + ratio
    return key.sort(dim=1)[1]


@torch.no_grad()
def space_filling_order(pos: Tensor, cluster_size: int, canvas_hw: Tuple[int, int],
                        rules: str = 'exact') -> Tensor:
    """Order the tokens along the anchor snake curve (steps 1-3 above).

    Args:
        pos: ``B x N x 2`` (x, y) positions on the canvas, in ``[0, w) x [0, h)``.
        cluster_size: ``m``, used only to size the anchor grid.
        canvas_hw: ``(h, w)`` of the canvas the positions live on.
        rules: ``'exact'`` (stable lexicographic sort, batch-invariant) or
            ``'official'`` (the official fp32 key, see the module docstring).

    Returns:
        ``B x N`` int64 permutation: ``pos[b, order[b]]`` is in curve order.
    """
    if pos.dim() != 3 or pos.shape[-1] != 2:
        raise ValueError(f'pos must be B x N x 2, got {tuple(pos.shape)}')
    check_choice('rules', rules, CLUSTER_RULES)
    b, n, _ = pos.shape
    h, w = canvas_hw
    ph, pw = anchor_grid(n, cluster_size, canvas_hw)
    device = pos.device
    if rules == 'official':
        return _official_order(pos, ph, pw, canvas_hw)
    if pos.dtype.is_floating_point:
        p = pos.to(torch.float64)
        cx = torch.floor(p[..., 0] * pw / w).long()
        cy = torch.floor(p[..., 1] * ph / h).long()
    else:
        p = pos.to(torch.float64)
        cx = torch.div(pos[..., 0].long() * pw, w, rounding_mode='floor')
        cy = torch.div(pos[..., 1].long() * ph, h, rounding_mode='floor')
    cx = cx.clamp_(0, pw - 1)
    cy = cy.clamp_(0, ph - 1)
    rank = snake_rank(ph, pw, device)[cy, cx]  # B x N
    prev, nxt = _anchor_neighbours(ph, pw, (h / ph, w / pw), device)
    d_prev = (p - prev[rank]).square().sum(-1)
    d_next = (p - nxt[rank]).square().sum(-1)
    ratio = d_prev / (d_next + 1e-5)
    # lexicographic (rank, ratio): stable sort by the secondary key, then by the primary
    by_ratio = ratio.argsort(dim=1, stable=True)
    by_rank = rank.gather(1, by_ratio).argsort(dim=1, stable=True)
    return by_ratio.gather(1, by_rank)


def balanced_clusters(pos_sorted: Tensor,
                      cluster_size: int) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Cut tokens that are already in curve order into clusters of exactly ``m``.

    Args:
        pos_sorted: ``B x N x 2`` positions in curve order.
        cluster_size: ``m``.

    Returns:
        ``(cluster_mean_pos B x K x 2 float, member_idx B x K x M int64,
        member_mask B x K x M bool or None)`` with ``K = ceil(N / m)``.
    """
    b, n, d = pos_sorted.shape
    m = cluster_size
    k = math.ceil(n / m)
    device = pos_sorted.device
    member = torch.arange(k * m, device=device)
    p = pos_sorted.to(torch.promote_types(pos_sorted.dtype, torch.float32))
    if k * m == n:
        mask = None
        means = p.view(b, k, m, d).mean(2)
    else:
        valid = member < n
        member = torch.where(valid, member, torch.zeros_like(member))
        mask = valid.view(1, k, m).expand(b, k, m)
        padded = p.new_zeros(b, k * m, d)
        padded[:, :n] = p
        counts = valid.view(k, m).sum(1).to(p.dtype).view(1, k, 1)
        means = padded.view(b, k, m, d).sum(2) / counts
    return means, member.view(1, k, m).expand(b, k, m), mask


@torch.no_grad()
def space_filling_cluster(pos: Tensor, cluster_size: int, canvas_hw: Tuple[int, int],
                          rules: str = 'exact') -> Clustering:
    """Balanced space-filling-curve clustering (see the module docstring).

    Args:
        pos: ``B x N x 2`` token positions (x, y) on an ``h x w`` canvas.
        cluster_size: ``m >= 1``, the exact size of every cluster but the last.
        canvas_hw: ``(h, w)``.
        rules: ``'exact'`` or ``'official'`` token order (see the module docstring).

    Returns:
        :class:`Clustering`; ``member_idx`` refers to the tokens *after* reordering by
        ``order`` (so cluster ``j`` is the contiguous slice ``[j*m, (j+1)*m)``).
    """
    check_int('cluster_size', cluster_size)
    order = space_filling_order(pos, cluster_size, canvas_hw, rules)
    pos_sorted = pos.gather(1, order.unsqueeze(-1).expand(-1, -1, pos.shape[-1]))
    means, member_idx, mask = balanced_clusters(pos_sorted, cluster_size)
    return Clustering(order, means, member_idx, mask)
