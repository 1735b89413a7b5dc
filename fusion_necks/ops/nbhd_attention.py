"""Neighbourhood attention over point tokens with a position bias and a blank token.

AutoFocusFormer, CVPR 2023, Sec. 3.2 (Eq. 2-3) and Sec. 4.3; the official code computes
the two halves with the CUDA kernels ``clustenqk``/``clustenav``
(official ``ClusterAttention`` and its CUDA kernels in apple/ml-autofocusformer). For query ``i`` with neighbours
``idx[i, 0..M-1]`` and head ``h``:

    a_ij   = q_i . k_{idx_ij} + bias_ij            (masked slots: excluded)
    a_blank = q_i . blank_k                         (no position bias)
    p       = softmax over the M + 1 logits
    out_i  = sum_j p_ij v_{idx_ij} + p_blank * blank_v

``q`` is expected to be already scaled by ``head_dim ** -0.5`` (the official code scales
``q`` before both the neighbour and the blank logits).

Implementation: a custom autograd function, chunked over queries. The forward keeps
only ``q, k, v``, the indices and the ``B x N x (M+1) x H`` probabilities; the backward
re-gathers each chunk's keys and values and scatter-adds their gradients with
``index_add_``. Peak memory is therefore ``O(B N C + B N M H)`` plus one chunk of
``B x chunk x M x C`` gathered features, instead of the ``B x N x M x C`` keys and values
that autograd would keep for every block (about 200 MB per block per image for
AFF-Tiny at 512^2).

Inference inside an AutoFocusFormer stage (``cluster_size=m``, no gradients) uses another
schedule of the same computation, :func:`cluster_nbhd_attention`: the ``m`` queries of a
cluster share one gather of the union of their neighbour clusters and one ``m x (U m)``
matmul, with ``-inf`` outside each query's own neighbourhood (the same softmax set).
Training keeps the per-query function below; :func:`cluster_schedule` switches the
schedule off (FLOP counters do, to count ``M`` neighbours per query).

Masked slots (the padding of a short last cluster): by default they are excluded
exactly (logit ``-inf``, probability 0). The official code instead *adds* ``-100`` to
their logits (``mask_value=-100.0``), so a padded slot keeps the weight
``exp(a_pad - 100) / Z``: negligible when its logit is of the order of the others, but
not when the padded slot's own logit (``q . k_0 + bias``, the padding points to token 0)
is large, e.g. 120 against 10 for the valid ones. The two readings are therefore not
interchangeable for a trained checkpoint; ``mask_value`` selects one.
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor

from .gather import flat_batch_index

#: Default bound on the number of gathered key (or value) elements per query chunk.
ATTN_MAX_ELEMENTS = 1 << 22

_CLUSTER_SCHEDULE = [True]


@contextlib.contextmanager
def cluster_schedule(enabled: bool) -> Iterator[None]:
    """Switch the per-cluster inference schedule (:func:`cluster_nbhd_attention`) on or
    off inside the block. FLOP counters turn it off: they count the paper's ``M``
    neighbours per query, not the union the schedule multiplies (``U m >= M``)."""
    previous = _CLUSTER_SCHEDULE[0]
    _CLUSTER_SCHEDULE[0] = bool(enabled)
    try:
        yield
    finally:
        _CLUSTER_SCHEDULE[0] = previous


def _chunk_size(b: int, m: int, c: int, max_elements: int, n: int) -> int:
    return max(1, min(n, max_elements // max(1, b * m * c)))


class _NbhdAttention(torch.autograd.Function):
    """Chunked gather attention.

    Layouts: ``*_hm`` tensors are head-major (``H x B x N x D``) so that the per-query
    products are batched matmuls over gathered ``M x D`` blocks; gradients of the
    gathered keys/values are accumulated row-major (``(B*Nk) x H x D``) with
    ``index_add_``, which is much faster than along an inner dimension. Gather
    targets are preallocated once per call and reused by every chunk.
    """

    @staticmethod
    def forward(ctx, q, k, v, idx, bias, mask, blank_k, blank_v, max_elements, mask_value):
        b, n, h, d = q.shape
        nk = k.shape[1]
        m = idx.shape[-1]
        has_blank = blank_k is not None
        acc = torch.promote_types(q.dtype, torch.float32)  # softmax in >= fp32
        chunk = _chunk_size(b, m, h * d, max_elements, n)
        flat_idx = flat_batch_index(idx, nk)
        q_hm = q.permute(2, 0, 1, 3)  # H x B x N x D (view)
        k_hm = k.permute(2, 0, 1, 3).reshape(h, b * nk, d)
        v_hm = v.permute(2, 0, 1, 3).reshape(h, b * nk, d)
        bias_hm = None if bias is None else bias.permute(3, 0, 1, 2)  # H x B x N x M (view)
        out_hm = q.new_empty(h, b, n, d)
        probs = q.new_empty(h, b, n, m + has_blank)
        gathered = q.new_empty(h * b * chunk * m * d)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            c = e - s
            rows = flat_idx[:, s:e].reshape(-1)
            buf = gathered[:h * b * c * m * d].view(h, b * c * m, d)
            qc = q_hm[:, :, s:e]  # H x B x c x D
            torch.index_select(k_hm, 1, rows, out=buf)
            logits = torch.matmul(qc.unsqueeze(-2), buf.view(h, b, c, m, d).transpose(-1, -2))
            logits = logits.squeeze(-2)  # H x B x c x M
            if bias_hm is not None:
                logits = logits + bias_hm[:, :, s:e]
            if mask is not None and mask_value is None:
                logits = logits.masked_fill(~mask[:, s:e], float('-inf'))
            elif mask is not None:  # official: additive, the slot stays in the softmax
                logits = logits + (~mask[:, s:e]).to(logits.dtype) * mask_value
            if has_blank:
                blank_logit = (qc * blank_k.view(h, 1, 1, d)).sum(-1, keepdim=True)
                logits = torch.cat([logits, blank_logit], -1)
            p = logits.to(acc).softmax(-1).to(q.dtype)  # H x B x c x (M [+1])
            probs[:, :, s:e] = p
            torch.index_select(v_hm, 1, rows, out=buf)
            o = torch.matmul(p[..., :m].unsqueeze(-2), buf.view(h, b, c, m, d)).squeeze(-2)
            if has_blank:
                o = o + p[..., m:] * blank_v.view(h, 1, 1, d)
            out_hm[:, :, s:e] = o
        ctx.save_for_backward(q, k_hm, v_hm, flat_idx, probs, blank_k, blank_v)
        ctx.has_bias = bias is not None
        ctx.chunk = chunk
        return out_hm.permute(1, 2, 0, 3).contiguous()

    @staticmethod
    def backward(ctx, grad_out):
        q, k_hm, v_hm, flat_idx, probs, blank_k, blank_v = ctx.saved_tensors
        b, n, h, d = q.shape
        nk = k_hm.shape[1] // b
        m = flat_idx.shape[-1]
        has_blank = blank_k is not None
        chunk = ctx.chunk
        need_q, need_k, need_v, _, need_bias, _, need_bk, need_bv, _, _ = ctx.needs_input_grad
        go = grad_out.contiguous()  # B x N x H x D
        go_hm = go.permute(2, 0, 1, 3)
        q_hm = q.permute(2, 0, 1, 3)
        gq_hm = q.new_empty(h, b, n, d) if need_q else None
        gk = q.new_zeros(b * nk, h, d) if need_k else None
        gv = q.new_zeros(b * nk, h, d) if need_v else None
        gbias = q.new_empty(b, n, m, h) if (need_bias and ctx.has_bias) else None
        gbk = torch.zeros_like(blank_k) if (has_blank and need_bk) else None
        gbv = torch.zeros_like(blank_v) if (has_blank and need_bv) else None
        gathered = q.new_empty(h * b * chunk * m * d)
        outer = q.new_empty(b * chunk * m * h * d) if (need_k or need_v) else None
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            c = e - s
            rows = flat_idx[:, s:e].reshape(-1)
            buf = gathered[:h * b * c * m * d].view(h, b * c * m, d)
            ob = None if outer is None else outer[:b * c * m * h * d].view(b, c, m, h, d)
            goc = go_hm[:, :, s:e]  # H x B x c x D
            p = probs[:, :, s:e]  # H x B x c x (M [+1])
            torch.index_select(v_hm, 1, rows, out=buf)
            dp = torch.matmul(goc.unsqueeze(-2), buf.view(h, b, c, m, d).transpose(-1, -2))
            dp = dp.squeeze(-2)  # H x B x c x M
            if has_blank:
                dp = torch.cat([dp, (goc * blank_v.view(h, 1, 1, d)).sum(-1, keepdim=True)], -1)
                if gbv is not None:
                    gbv += (p[..., m:] * goc).sum((1, 2))
            if gv is not None:  # dv[idx_ij] += p_ij * dout_i
                torch.mul(p[..., :m].permute(1, 2, 3, 0).unsqueeze(-1), go[:, s:e].unsqueeze(2),
                          out=ob)
                gv.index_add_(0, rows, ob.view(-1, h, d))
            ds = p * (dp - (p * dp).sum(-1, keepdim=True))  # softmax backward
            dsn = ds[..., :m]
            if gbias is not None:
                gbias[:, s:e] = dsn.permute(1, 2, 3, 0)
            qc = q_hm[:, :, s:e]
            if gq_hm is not None:
                torch.index_select(k_hm, 1, rows, out=buf)
                g = torch.matmul(dsn.unsqueeze(-2), buf.view(h, b, c, m, d)).squeeze(-2)
                if has_blank:
                    g = g + ds[..., m:] * blank_k.view(h, 1, 1, d)
                gq_hm[:, :, s:e] = g
            if gk is not None:  # dk[idx_ij] += ds_ij * q_i
                torch.mul(dsn.permute(1, 2, 3, 0).unsqueeze(-1), q[:, s:e].unsqueeze(2), out=ob)
                gk.index_add_(0, rows, ob.view(-1, h, d))
            if gbk is not None:
                gbk += (ds[..., m:] * qc).sum((1, 2))
        gq = None if gq_hm is None else gq_hm.permute(1, 2, 0, 3)
        gk = None if gk is None else gk.view(b, nk, h, d)
        gv = None if gv is None else gv.view(b, nk, h, d)
        return gq, gk, gv, None, gbias, None, gbk, gbv, None, None


def _cluster_union_columns(idx: Tensor, m: int) -> Tuple[Tensor, Tensor]:
    """For queries grouped in consecutive blocks of ``m`` whose neighbour lists are whole
    key clusters (``idx[..., j*m + t] = c_j * m + t``, padded slots aside): the union of
    the clusters that each query group uses, and where each neighbour slot lies in it.

    Returns ``table`` (``B x G x U`` cluster ids of each group's union, ascending; unused
    slots hold cluster 0 and no query points at them) and ``cols`` (``B x G*m x M``:
    neighbour slot ``(i, j*m + t)`` is column ``pos * m + t`` of its group's ``U*m`` keys).
    Rows past ``N`` repeat the last query's."""
    b, n, mm = idx.shape
    nnc = mm // m
    g = -(-n // m)
    # the first slot of every block is a real token (a cluster has >= 1 member), so it
    # names the cluster also in the short last one, whose padded slots hold 0
    near = idx[..., ::m] // m                                       # B x N x nnc
    if g * m != n:
        near = torch.cat([near, near[:, -1:].expand(b, g * m - n, nnc)], 1)
    cand = near.reshape(b, g, m * nnc)
    srt, perm = cand.sort(-1)
    first = torch.ones_like(srt, dtype=torch.bool)
    first[..., 1:] = srt[..., 1:] != srt[..., :-1]
    rank = first.cumsum(-1) - 1                                     # union slot, sorted order
    u = int(rank[..., -1].max()) + 1
    table = srt.new_zeros(b, g, u).scatter_(-1, rank, srt)          # equal values, same slot
    slot = torch.empty_like(rank).scatter_(-1, perm, rank)          # union slot, input order
    cols = (slot.view(b, g * m, nnc, 1) * m + torch.arange(m, device=idx.device))
    return table, cols.view(b, g * m, mm)


def _pad_rows(x: Tensor, rows: int, source: int) -> Tensor:
    """Pad dim 1 to ``rows`` with copies of row ``source`` (0: the token that padded
    neighbour slots point at; -1: the last query, so padded queries stay finite)."""
    extra = rows - x.shape[1]
    if extra <= 0:
        return x
    src = x[:, source:source + 1] if source >= 0 else x[:, source:]
    return torch.cat([x, src.expand(x.shape[0], extra, *x.shape[2:])], 1)


def cluster_nbhd_attention(q: Tensor, k: Tensor, v: Tensor, idx: Tensor, cluster_size: int,
                           bias: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                           blank_k: Optional[Tensor] = None, blank_v: Optional[Tensor] = None,
                           max_elements: int = ATTN_MAX_ELEMENTS,
                           mask_value: Optional[float] = None) -> Tensor:
    """:func:`nbhd_attention` for AutoFocusFormer's cluster neighbourhoods, forward only.

    In a stage, the tokens are in clustering order (cluster ``c`` = tokens ``c*m ..
    c*m+m-1``) and every token attends to the members of its nearest clusters, so its
    ``M = nnc * m`` neighbours are whole clusters. The general op gathers ``M`` keys and
    values per query (``N x M x C``, about 400 MB per block for AFF-Tiny's first stage at
    512x1024) and multiplies one query row at a time. Here the ``m`` queries of one cluster
    share one gather: the union of their neighbour clusters (``U`` clusters; ~9.4 for
    ``nnc = 6`` on a grid), so the gathered volume is ``N x U x C`` and the logits are one
    ``m x (U m)`` matmul per cluster. Keys outside a query's own neighbourhood get logit
    ``-inf`` (probability exactly 0), so the softmax runs over the same set as
    :func:`nbhd_attention`; the numbers agree to float rounding (summation order).

    Args: as :func:`nbhd_attention`, with ``cluster_size`` ``m`` and keys = queries
    (``k.shape[1] == N``). ``idx`` must have the cluster structure above (what
    ``AFFStage.build_neighbourhoods`` builds); padded slots (``mask`` False) point at
    token 0 as there.

    Returns:
        ``B x N x H x D``.
    """
    b, n, h, d = q.shape
    m = cluster_size
    mm = idx.shape[-1]
    if k.shape[1] != n or mm % m:
        raise ValueError(f'cluster attention needs keys = queries and M divisible by '
                         f'cluster_size={m}, got q {tuple(q.shape)}, k {tuple(k.shape)}, M={mm}')
    table, cols = _cluster_union_columns(idx, m)
    g, u = table.shape[1:]
    um = u * m
    gm = g * m
    acc = torch.promote_types(q.dtype, torch.float32)
    # head-major, padded to whole clusters (keys with token 0, queries with the last one)
    k_hm = _pad_rows(k, gm, 0).permute(0, 2, 1, 3).reshape(b * h * g, m * d)
    v_hm = _pad_rows(v, gm, 0).permute(0, 2, 1, 3).reshape(b * h * g, m * d)
    q_hm = _pad_rows(q, gm, -1).permute(0, 2, 1, 3).reshape(b, h, g, m, d)
    # additive term of each neighbour slot: the position bias, and the padding rule
    if bias is None:
        add = q.new_zeros(1, 1, 1, 1).expand(b, gm, mm, h)
    else:
        add = _pad_rows(bias, gm, -1)
    if mask is not None:
        keep = _pad_rows(mask, gm, -1).unsqueeze(-1)
        if mask_value is None:
            add = add.masked_fill(~keep, float('-inf'))
        else:
            add = add + (~keep).to(add.dtype) * mask_value
    add_hm = add.permute(0, 3, 1, 2)                                 # B x H x Gm x M (view)
    row_base = (torch.arange(b * h, device=q.device) * g).view(b, h, 1, 1)
    out = q.new_empty(b, h, g, m, d)
    chunk = max(1, min(g, max_elements // max(1, b * h * um * max(d, m))))
    for s in range(0, g, chunk):
        e = min(g, s + chunk)
        c = e - s
        rows = (table[:, s:e].unsqueeze(1) + row_base).reshape(-1)  # B*H*c*U blocks
        kg = k_hm.index_select(0, rows).view(b, h, c, um, d)
        qc = q_hm[:, :, s:e]                                           # B x H x c x m x D
        logits = torch.matmul(qc, kg.transpose(-1, -2))               # B x H x c x m x Um
        full = logits.new_full((b, h, c * m, um), float('-inf'))
        ccols = cols[:, s * m:e * m].unsqueeze(1).expand(b, h, c * m, mm)
        full.scatter_(-1, ccols, add_hm[:, :, s * m:e * m].to(full.dtype))
        logits = logits.view(b, h, c * m, um) + full
        if blank_k is not None:
            blank = (qc * blank_k.view(1, h, 1, 1, d)).sum(-1).view(b, h, c * m, 1)
            logits = torch.cat([logits, blank], -1)
        p = logits.to(acc).softmax(-1).to(q.dtype)
        del kg, full, logits
        vg = v_hm.index_select(0, rows).view(b, h, c, um, d)
        o = torch.matmul(p[..., :um].view(b, h, c, m, um), vg)        # B x H x c x m x D
        if blank_k is not None:
            o = o + p[..., um:].view(b, h, c, m, 1) * blank_v.view(1, h, 1, 1, d)
        out[:, :, s:e] = o
    return out.view(b, h, gm, d)[:, :, :n].permute(0, 2, 1, 3).contiguous()


def nbhd_attention(q: Tensor,
                   k: Tensor,
                   v: Tensor,
                   idx: Tensor,
                   bias: Optional[Tensor] = None,
                   mask: Optional[Tensor] = None,
                   blank_k: Optional[Tensor] = None,
                   blank_v: Optional[Tensor] = None,
                   max_elements: int = ATTN_MAX_ELEMENTS,
                   mask_value: Optional[float] = None,
                   cluster_size: Optional[int] = None) -> Tensor:
    """Multi-head attention of every query over its own list of neighbours.

    Args:
        q: ``B x N x H x D`` queries, already scaled by ``D ** -0.5``.
        k, v: ``B x Nk x H x D`` keys and values of the tokens ``idx`` refers to.
        idx: ``B x N x M`` int64 neighbour indices into ``k``/``v`` (the official
            ``member_idx``); duplicates are allowed and count separately.
        bias: optional ``B x N x M x H`` additive logit bias (the relative-position bias).
        mask: optional ``B x N x M`` bool, False for padded slots (excluded exactly
            unless ``mask_value`` is given). Every query needs at least one valid slot
            or a blank token.
        blank_k, blank_v: optional ``H x D`` learnable blank key/value (given together).
        max_elements: bound on ``B * chunk * M * H * D`` gathered elements per chunk.
        mask_value: None (exact exclusion) or a number added to the logits of the
            masked slots (``-100.0``: the official code).
        cluster_size: ``m`` when the neighbourhoods are whole clusters of ``m`` tokens and
            the queries (= keys) are in clustering order (AutoFocusFormer's stages): without
            gradients, :func:`cluster_nbhd_attention` then computes the same attention
            with one gather per cluster instead of one per query.

    Returns:
        ``B x N x H x D`` attention output (before the output projection).
    """
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError(f'q, k, v must be B x N x H x D with k, v alike, got {tuple(q.shape)}, '
                         f'{tuple(k.shape)}, {tuple(v.shape)}')
    b, n, h, d = q.shape
    if k.shape[0] != b or k.shape[2:] != q.shape[2:]:
        raise ValueError(f'k {tuple(k.shape)} does not match q {tuple(q.shape)}')
    if idx.shape[:2] != (b, n) or idx.dim() != 3:
        raise ValueError(f'idx must be B x N x M = {b} x {n} x M, got {tuple(idx.shape)}')
    m = idx.shape[2]
    if bias is not None and bias.shape != (b, n, m, h):
        raise ValueError(f'bias must be B x N x M x H = {(b, n, m, h)}, got {tuple(bias.shape)}')
    if mask is not None and mask.shape != (b, n, m):
        raise ValueError(f'mask must be B x N x M = {(b, n, m)}, got {tuple(mask.shape)}')
    if (blank_k is None) != (blank_v is None):
        raise ValueError('blank_k and blank_v must be given together')
    if blank_k is not None and (blank_k.shape != (h, d) or blank_v.shape != (h, d)):
        raise ValueError(f'blank_k/blank_v must be H x D = {(h, d)}, got {tuple(blank_k.shape)}, '
                         f'{tuple(blank_v.shape)}')
    if mask is not None:
        mask = mask.bool()
    dtype = q.dtype  # one compute dtype (e.g. fp16 q from autocast with fp32 blank tokens)
    k, v = k.to(dtype), v.to(dtype)
    bias = None if bias is None else bias.to(dtype)
    if blank_k is not None:
        blank_k, blank_v = blank_k.to(dtype), blank_v.to(dtype)
    if cluster_size is not None and _CLUSTER_SCHEDULE[0] and not (torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (q, k, v, bias, blank_k, blank_v))):
        return cluster_nbhd_attention(q, k, v, idx.long(), cluster_size, bias, mask, blank_k,
                                      blank_v, max_elements, mask_value)
    # q, k, v and bias may be strided views (e.g. a split ``kv`` projection, or a bias
    # expanded over the batch): the function reads them through head-major views.
    return _NbhdAttention.apply(q, k, v, idx.long(), bias, mask, blank_k, blank_v, max_elements,
                                mask_value)
