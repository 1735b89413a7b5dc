"""Batched row gathers on point-token tensors.

Every point op in this package indexes a per-image token table ``x: B x N x ...`` with
per-image integer indices ``idx: B x ...``. Flattening the batch into the row index and
using one ``index_select`` is faster on CPU and GPU than ``torch.gather`` with an
expanded index, and its backward is a deterministic scatter-add on the CPU.
"""
import torch
from torch import Tensor


def flat_batch_index(idx: Tensor, num_rows: int) -> Tensor:
    """Offset per-image row indices into the flattened ``(B * N)`` row space.

    Args:
        idx: ``B x ...`` int64 indices in ``[0, num_rows)``.
        num_rows: ``N``, the number of rows per image of the table being indexed.

    Returns:
        ``B x ...`` int64 indices in ``[0, B * num_rows)``.
    """
    b = idx.shape[0]
    if b == 1:  # no offset: skip a full pass over the indices
        return idx
    offset = torch.arange(b, device=idx.device, dtype=idx.dtype) * num_rows
    return idx + offset.view(b, *([1] * (idx.dim() - 1)))


def batched_index_select(x: Tensor, idx: Tensor) -> Tensor:
    """``out[b, i..., :] = x[b, idx[b, i...], :]``.

    Args:
        x: ``B x N x C...`` table (any trailing shape).
        idx: ``B x I...`` int64 indices into dimension 1 of ``x``.

    Returns:
        ``B x I... x C...``. Differentiable with respect to ``x``.
    """
    if x.shape[0] != idx.shape[0]:
        raise ValueError(f'batch sizes differ: x has {x.shape[0]}, idx has {idx.shape[0]}')
    b, n = x.shape[:2]
    rest = x.shape[2:]
    flat = x.reshape(b * n, -1)
    out = flat.index_select(0, flat_batch_index(idx, n).reshape(-1))
    return out.view(*idx.shape, *rest)
