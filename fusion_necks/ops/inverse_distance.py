"""Inverse-distance-weighted (Shepard) interpolation between point sets.

AutoFocusFormer, CVPR 2023, Sec. 4.1: features at an arbitrary location ``p`` are the
average of its ``k`` nearest tokens weighted by the inverse of their distance raised to a
power (learnable and initialised at 6 in the paper's point-based deformable attention),
normalised to sum to one:

    w_j = |p - p_j|^(-power) / sum_j' |p - p_j'|^(-power)

The official SEG code writes this as ``(|p - p_j|^2)^(-beta)`` with ``beta = power / 2``
(``SHEPARD_POWER = 6`` -> ``beta = 3``; the official ``msdeformattn_pc.py``, apple/ml-autofocusformer-segmentation).
Here the normalisation is done in log space, ``softmax(-(power / 2) * log(d^2 + eps))``,
which is the same quantity but cannot overflow for large powers or tiny distances: a
query that coincides with a token gets that token's feature (up to ``eps``). Gradients
reach the query positions, the token positions (through the distances) and ``power``
when it is a tensor.
"""
from typing import Optional, Union

from torch import Tensor

from .gather import batched_index_select
from .knn import knn
from .weighted_aggregation import AGG_MAX_ELEMENTS, weighted_gather


def inverse_distance_weights(query_pos: Tensor,
                             nbr_pos: Tensor,
                             power: Union[float, Tensor] = 2.0,
                             eps: float = 1e-11,
                             nbr_mask: Optional[Tensor] = None) -> Tensor:
    """Normalised inverse-distance weights of each query's neighbours.

    Args:
        query_pos: ``B x Nq x D`` query locations (float).
        nbr_pos: ``B x Nq x K x D`` locations of each query's K neighbours.
        power: exponent on the (Euclidean) distance; a Python float or a scalar tensor
            (e.g. an ``nn.Parameter`` to learn it). ``power = 6`` is the paper's setting,
            i.e. ``beta = 3`` on squared distances in the official code.
        eps: added to the squared distance before the log.
        nbr_mask: optional ``B x Nq x K`` bool, False for neighbours to ignore.

    Returns:
        ``B x Nq x K`` weights, non-negative, summing to 1 over K.
    """
    if nbr_pos.dim() != query_pos.dim() + 1 or nbr_pos.shape[:2] != query_pos.shape[:2]:
        raise ValueError(f'nbr_pos must be B x Nq x K x D for query_pos {tuple(query_pos.shape)}, '
                         f'got {tuple(nbr_pos.shape)}')
    q = query_pos if query_pos.is_floating_point() else query_pos.float()
    p = nbr_pos.to(q.dtype)
    d2 = (p - q.unsqueeze(2)).square().sum(-1)  # B x Nq x K
    return inverse_sqdist_weights(d2, power, eps, nbr_mask)


def inverse_sqdist_weights(sqdist: Tensor,
                           power: Union[float, Tensor] = 2.0,
                           eps: float = 1e-11,
                           nbr_mask: Optional[Tensor] = None) -> Tensor:
    """:func:`inverse_distance_weights` from precomputed squared distances.

    For callers that already have ``|q - p_j|^2`` (e.g. from the neighbour search).
    The normalisation over the last dim is written out (max, exp, sum) instead of
    ``softmax``: with K = 4 neighbours per row ``softmax`` is about 5x slower on the CPU;
    the result agrees to a few ulp.

    Args:
        sqdist: ``B x Nq x K`` squared distances.
        power, eps, nbr_mask: see :func:`inverse_distance_weights`.

    Returns:
        ``B x Nq x K`` weights summing to 1 over K.
    """
    logw = (sqdist + eps).log() * (-0.5 * power)
    if nbr_mask is not None:
        logw = logw.masked_fill(~nbr_mask.bool(), float('-inf'))
    w = (logw - logw.amax(-1, keepdim=True)).exp()
    return w / w.sum(-1, keepdim=True)


def inverse_distance_interpolate(query_pos: Tensor,
                                 pos: Tensor,
                                 feat: Tensor,
                                 k: int = 4,
                                 power: Union[float, Tensor] = 2.0,
                                 eps: float = 1e-11,
                                 nbr_idx: Optional[Tensor] = None,
                                 max_elements: int = AGG_MAX_ELEMENTS) -> Tensor:
    """Interpolate token features at query locations from their k nearest tokens.

    Args:
        query_pos: ``B x Nq x D`` locations to interpolate at (float; may require grad).
        pos: ``B x N x D`` token locations (int or float).
        feat: ``B x N x C`` token features.
        k: number of nearest tokens (the paper and the official code use 4). Ignored
            when ``nbr_idx`` is given.
        power: exponent on the distance (float or scalar tensor), see
            :func:`inverse_distance_weights`.
        eps: see :func:`inverse_distance_weights`.
        nbr_idx: optional precomputed ``B x Nq x K`` int64 neighbour indices into ``pos``
            (e.g. an approximate lookup table, as the official pixel decoder uses);
            found by exact :func:`~fusion_necks.ops.knn.knn` otherwise.
        max_elements: chunk bound passed to the weighted gather.

    Returns:
        ``B x Nq x C`` interpolated features.
    """
    if pos.shape[:2] != feat.shape[:2]:
        raise ValueError(f'pos {tuple(pos.shape)} and feat {tuple(feat.shape)} must share B x N')
    if nbr_idx is None:
        _, nbr_idx = knn(query_pos, pos, min(k, pos.shape[1]))
    qf = query_pos if query_pos.is_floating_point() else query_pos.float()
    pf = pos.to(qf.dtype)
    nbr_pos = batched_index_select(pf, nbr_idx)  # B x Nq x K x D
    w = inverse_distance_weights(qf, nbr_pos, power=power, eps=eps)
    return weighted_gather(w.to(feat.dtype), feat, nbr_idx, max_elements)
