"""Exact k-nearest neighbours between point sets, chunked over queries.

Replaces the pykeops ``argKmin`` of the official AutoFocusFormer code: a plain, batched
squared-difference distance with ``topk``, computed for a block of queries at a time so
that the ``B x Nq x Nd`` distance matrix never exists at once (at 1024² input, 65536
tokens to 8192 cluster means would be 537M entries per image).

Speed (see ``tools/analysis/benchmark_ops.py knn-*``): the squared distance is built one
coordinate at a time in place (``(qx - dx)^2``, then ``+= (qy - dy)^2``), which never
materialises the ``chunk x Nd x D`` difference tensor, and a chunk holds at most
:data:`KNN_CHUNK_ELEMENTS` distances (1 MiB in fp32) so that the distance block is still
in cache when ``topk`` reads it. Both give the same fp32 numbers as the summed
broadcast difference (the same two products added in the same order), hence the same
neighbours.

Ties (``ties=``): ``'topk'`` (default) returns whichever equidistant candidates
``torch.topk`` picks; ``'lowest_index'`` is the official code's KeOps ``argKmin`` rule:
candidates are compared on the fp32 Euclidean distance (after the square root, as the
KeOps formula ``sum((q - d)^2) ** 0.5``), and among equal distances the lower database
index comes first, so the result is ordered by ``(distance, index)``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..utils.validation import check_choice

#: Default bound on the number of distance entries materialised per chunk.
KNN_MAX_ELEMENTS = 1 << 24
#: Distances per chunk for speed (cache-sized); ``max_elements`` still bounds it.
KNN_CHUNK_ELEMENTS = 1 << 18
#: Tie rules of :func:`knn`.
KNN_TIES = ('topk', 'lowest_index')


def _topk_lowest_index(dist: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """``k`` smallest entries of the last dim, ordered by ``(value, index)``.

    Everything strictly below the ``k``-th value is taken; of the entries equal to it,
    the lowest indices fill the remaining slots. Exactly ``k`` entries per row are
    selected, so ``nonzero`` (row-major, hence ascending index) reshapes to ``... x k``;
    a stable sort on the values then orders them.
    """
    kth = dist.topk(k, dim=-1, largest=False, sorted=True).values[..., -1:]
    below = dist < kth
    at = dist == kth
    room = k - below.sum(-1, keepdim=True)
    chosen = below | (at & (at.cumsum(-1) <= room))
    idx = chosen.nonzero()[:, -1].view(*dist.shape[:-1], k)
    val = dist.gather(-1, idx)
    val, order = val.sort(dim=-1, stable=True)
    return val, idx.gather(-1, order)


@torch.no_grad()
def knn(query: Tensor,
        database: Tensor,
        k: int,
        max_elements: int = KNN_MAX_ELEMENTS,
        database_mask: Optional[Tensor] = None,
        ties: str = 'topk') -> Tuple[Tensor, Tensor]:
    """k nearest database points (Euclidean) for every query point, per image.

    Distances are computed as ``sum((q - d)^2)`` in at least fp32 (never the
    ``|q|^2 + |d|^2 - 2 q.d`` matmul trick, whose cancellation error on canvas
    coordinates of a few hundred would reorder near-equidistant neighbours). No
    gradient flows (neighbour search is a discrete choice, as in the official code).
    Ties: among candidates at exactly the same distance, which are returned and in
    which order is ``torch.topk``'s choice (not the lowest index: on integer grids
    ties are common). The distances are exact, and a query's result depends only on
    its own row of distances: not on the chunking, the other queries or the other
    images of the batch (tested against the previous implementation on tie-heavy
    inputs: identical indices).

    Args:
        query: ``B x Nq x D`` query positions.
        database: ``B x Nd x D`` candidate positions.
        k: number of neighbours, ``1 <= k <= Nd``.
        max_elements: bound on ``B * chunk * Nd`` distance entries per chunk (chunks
            are at most :data:`KNN_CHUNK_ELEMENTS` anyway, for speed).
        database_mask: optional ``B x Nd`` bool, False for candidates to ignore
            (they get distance ``inf``).
        ties: ``'topk'`` or ``'lowest_index'`` (the official KeOps rule, see the
            module docstring).

    Returns:
        ``(dist, idx)``: ``B x Nq x k`` Euclidean distances (ascending) and int64
        indices into ``database``.
    """
    if query.dim() != 3 or database.dim() != 3:
        raise ValueError(f'query and database must be B x N x D, got {tuple(query.shape)} '
                         f'and {tuple(database.shape)}')
    b, nq, d = query.shape
    nd = database.shape[1]
    if database.shape[0] != b or database.shape[2] != d:
        raise ValueError(f'database {tuple(database.shape)} does not match query '
                         f'{tuple(query.shape)}')
    if not 1 <= k <= nd:
        raise ValueError(f'k must be in [1, {nd}] (database size), got {k}')
    check_choice('ties', ties, KNN_TIES)
    dtype = torch.promote_types(query.dtype, torch.float32)
    if not dtype.is_floating_point:
        dtype = torch.float32
    q = query.detach().to(dtype)
    db_t = database.detach().to(dtype).transpose(1, 2).unsqueeze(1)  # B x 1 x D x Nd
    per_chunk = min(max_elements, KNN_CHUNK_ELEMENTS)
    chunk = max(1, min(nq, per_chunk // max(1, b * nd)))
    dists, idxs = [], []
    for start in range(0, nq, chunk):
        qc = q[:, start:start + chunk].unsqueeze(-1)  # B x c x D x 1
        dist2 = torch.sub(qc[:, :, 0], db_t[:, :, 0]).square_()  # B x c x Nd
        for j in range(1, d):
            dist2.add_(torch.sub(qc[:, :, j], db_t[:, :, j]).square_())
        if database_mask is not None:
            dist2.masked_fill_(~database_mask.unsqueeze(1), float('inf'))
        if ties == 'topk':
            val, idx = dist2.topk(k, dim=-1, largest=False, sorted=True)
            val = val.sqrt_()
        else:
            val, idx = _topk_lowest_index(dist2.sqrt_(), k)
        dists.append(val)
        idxs.append(idx)
    return torch.cat(dists, 1), torch.cat(idxs, 1)
