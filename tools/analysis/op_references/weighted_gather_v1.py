"""``ops.weighted_gather`` before the fused ``F.embedding_bag`` forward (kept for the A/B
run of ``tools/analysis/ab_point_decoder_gather.py``): an ``index_select`` of the
neighbour rows into a reused chunk buffer, then one ``bmm`` per chunk. Inference only.
"""
import torch
from torch import Tensor

from fusion_necks.ops.gather import flat_batch_index
from fusion_necks.ops.weighted_aggregation import AGG_MAX_ELEMENTS


@torch.no_grad()
def weighted_gather_v1(weights: Tensor, feat: Tensor, idx: Tensor,
                       max_elements: int = AGG_MAX_ELEMENTS) -> Tensor:
    """``out[b, i, :] = sum_j weights[b, i, j] * feat[b, idx[b, i, j], :]`` (``B x N x C``)."""
    b, n, m = weights.shape
    nf, c = feat.shape[1], feat.shape[2]
    chunk = max(1, min(n, max_elements // max(1, b * m * c)))
    flat_idx = flat_batch_index(idx.long(), nf)
    table = feat.reshape(b * nf, c)
    out = weights.new_empty(b, n, c)
    gathered = feat.new_empty(b * chunk * m * c)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        f_nb = gathered[:b * (e - s) * m * c].view(b * (e - s), m, c)
        torch.index_select(table, 0, flat_idx[:, s:e].reshape(-1), out=f_nb.view(-1, c))
        w = weights[:, s:e].reshape(b * (e - s), 1, m)
        out[:, s:e] = torch.bmm(w, f_nb).view(b, e - s, c)
    return out
