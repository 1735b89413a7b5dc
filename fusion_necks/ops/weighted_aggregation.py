"""Weighted aggregation of neighbour features (PointConv-style), chunked.

    out[b, i, t, c] = sum_j  weights[b, i, j, t] * feat[b, idx[b, i, j], c]

This is the official ``clustenwf`` CUDA kernel (apple/ml-autofocusformer), used by
AutoFocusFormer's neighbourhood merging (paper Eq. 4, with ``T = C_mid = 4`` weight channels) and by PointConv layers; with ``T = 1`` it is the ``weighted_gather``
used by inverse-distance interpolation (:func:`weighted_gather`).

A custom autograd function keeps only ``weights``, ``feat`` and ``idx`` for the
backward and processes queries in chunks, so the ``B x N x M x C`` gathered features
never exist at once. With one weight channel (``T = 1``: inverse-distance interpolation,
the point deformable attention) the forward is ``F.embedding_bag(mode='sum',
per_sample_weights=...)``, a fused gather and weighted sum that never materialises the
gathered rows: 7-10x faster than ``index_select`` + ``bmm`` on the CPU at the point
decoder's sizes (same sums in the same order of ``j``, within float rounding). With
``T > 1`` it would read every row ``T`` times, which measured slower at ``C = 256``, so
those keep the chunked gather.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from .gather import flat_batch_index

#: Default bound on the number of gathered feature elements per query chunk.
AGG_MAX_ELEMENTS = 1 << 22


class _WeightedNeighbourSum(torch.autograd.Function):

    @staticmethod
    def forward(ctx, weights, feat, idx, max_elements):
        b, n, m, t = weights.shape
        nf, c = feat.shape[1], feat.shape[2]
        chunk = max(1, min(n, max_elements // max(1, b * m * c)))
        flat_idx = flat_batch_index(idx, nf)
        table = feat.reshape(b * nf, c)
        ctx.save_for_backward(weights, feat, flat_idx)
        ctx.chunk = chunk
        if t == 1:
            out = F.embedding_bag(flat_idx.reshape(b * n, m), table, mode='sum',
                                  per_sample_weights=weights.reshape(b * n, m))
            return out.view(b, n, 1, c)
        out = weights.new_empty(b, n, t, c)
        gathered = feat.new_empty(b * chunk * m * c)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            fi = flat_idx[:, s:e]
            f_nb = gathered[:b * (e - s) * m * c].view(b * (e - s) * m, c)
            torch.index_select(table, 0, fi.reshape(-1), out=f_nb)
            f_nb = f_nb.view(b * (e - s), m, c)
            w = weights[:, s:e].reshape(b * (e - s), m, t)
            if b == 1:  # the chunk of ``out`` is contiguous: write it in place
                torch.bmm(w.transpose(1, 2), f_nb, out=out[0, s:e])
            else:
                out[:, s:e] = torch.bmm(w.transpose(1, 2), f_nb).view(b, e - s, t, c)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weights, feat, flat_idx = ctx.saved_tensors
        b, n, m, t = weights.shape
        nf, c = feat.shape[1], feat.shape[2]
        need_w, need_f = ctx.needs_input_grad[:2]
        grad_out = grad_out.contiguous()
        table = feat.reshape(b * nf, c)
        gw = torch.empty_like(weights) if need_w else None
        gf = torch.zeros(b * nf, c, dtype=feat.dtype, device=feat.device) if need_f else None
        chunk = ctx.chunk
        gathered = feat.new_empty(b * chunk * m * c)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            fi = flat_idx[:, s:e].reshape(-1)
            go = grad_out[:, s:e].reshape(b * (e - s), t, c)
            buf = gathered[:b * (e - s) * m * c].view(b * (e - s), m, c)
            if gw is not None:
                torch.index_select(table, 0, fi, out=buf.view(-1, c))
                gw[:, s:e] = torch.bmm(buf, go.transpose(1, 2)).view(b, e - s, m, t)
            if gf is not None:
                w = weights[:, s:e].reshape(b * (e - s), m, t)
                torch.bmm(w, go, out=buf)
                gf.index_add_(0, fi, buf.view(-1, c))
        return gw, (None if gf is None else gf.view_as(feat)), None, None


def weighted_neighbour_sum(weights: Tensor, feat: Tensor, idx: Tensor,
                           max_elements: int = AGG_MAX_ELEMENTS) -> Tensor:
    """``out[b, i, t, :] = sum_j weights[b, i, j, t] * feat[b, idx[b, i, j], :]``.

    Args:
        weights: ``B x N x M x T`` per-neighbour weights (T weight channels).
        feat: ``B x Nf x C`` features of the tokens ``idx`` refers to.
        idx: ``B x N x M`` int64 (or int32) indices into ``feat``; int32 stays int32
            while ``B * Nf`` fits (the gathers are ~20% faster with it).
        max_elements: bound on ``B * chunk * M * C`` gathered elements per chunk.

    Returns:
        ``B x N x T x C``; differentiable w.r.t. ``weights`` and ``feat``.
    """
    if weights.dim() != 4 or feat.dim() != 3 or idx.dim() != 3:
        raise ValueError(f'expected weights B x N x M x T, feat B x Nf x C, idx B x N x M; got '
                         f'{tuple(weights.shape)}, {tuple(feat.shape)}, {tuple(idx.shape)}')
    if idx.shape != weights.shape[:3] or feat.shape[0] != weights.shape[0]:
        raise ValueError(f'idx {tuple(idx.shape)} must equal weights.shape[:3] '
                         f'{tuple(weights.shape[:3])} and batch sizes must agree')
    dtype = torch.promote_types(weights.dtype, feat.dtype)
    keep_int32 = idx.dtype == torch.int32 and feat.shape[0] * feat.shape[1] < 2 ** 31
    return _WeightedNeighbourSum.apply(weights.to(dtype).contiguous(), feat.to(dtype).contiguous(),
                                       idx if keep_int32 else idx.long(), max_elements)


def weighted_gather(weights: Tensor, feat: Tensor, idx: Tensor,
                    max_elements: int = AGG_MAX_ELEMENTS) -> Tensor:
    """``out[b, i, :] = sum_j weights[b, i, j] * feat[b, idx[b, i, j], :]``.

    Args:
        weights: ``B x N x M``; feat: ``B x Nf x C``; idx: ``B x N x M`` int64 or int32.

    Returns:
        ``B x N x C``.
    """
    return weighted_neighbour_sum(weights.unsqueeze(-1), feat, idx, max_elements).squeeze(2)
