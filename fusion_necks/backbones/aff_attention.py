"""Point-based local attention of AutoFocusFormer (one head set, one block)."""
from typing import Optional

import torch
from torch import Tensor, nn

from ..ops.nbhd_attention import nbhd_attention


class AFFNeighbourhoodAttention(nn.Module):
    """Multi-head attention over each token's neighbourhood, with a relative-position
    bias and a learnable blank token.

    AutoFocusFormer, CVPR 2023: Eq. (2)-(3) and Sec. 4.2-4.3. For token ``i`` and its
    neighbours ``j`` (the members of its nearest clusters):

        A = softmax([ q_i k_j^T + w(rel_ij) ,  q_i k_blank^T ]),   q = scale * W_q x
        out_i = W_o ( sum_j A_ij v_j + A_i,blank v_blank )

    * ``w`` (``rel_pos_bias``) is one ``Linear(F -> heads)`` on the relative-position
      features ``F = 5`` (expanded, paper Sec. 4.2) or ``F = 2`` (``(dx, dy)`` only),
      with ``rel = p_j - p_i`` (neighbour minus query, as the official code).
    * ``blank_k``, ``blank_v`` in ``R^C`` are split over the heads; the blank logit has
      no position bias (official code). ``blank_token=False`` removes them (paper Table 5
      ablation).

    Parameter layout: ``kv`` is ``Linear(C, 2C)`` whose output is ``[k | v]``, each split
    into heads (``2 x H x D``); the official checkpoints interleave ``[k_h | v_h]`` per head,
    which ``tools/model_converters/aff2fusion.py`` reorders.

    Args:
        dim: channels ``C``.
        num_heads: ``H`` (``C`` divisible by ``H``).
        rel_pos_dim: ``F``, input features of the position bias (5 or 2).
        blank_token: learnable blank key/value.
        proj_drop: dropout after the output projection.
        max_elements: chunk bound of :func:`~fusion_necks.ops.nbhd_attention`.
        mask_value: how padded neighbour slots are masked: None excludes them exactly,
            ``-100.0`` adds -100 to their logits as the official code.

    Shapes:
        ``x: B x N x C``, ``nbr_idx: B x N x M`` int64, ``rel: B' x N x M x F`` (``B'`` is
        ``B`` or 1 when all images share the neighbourhoods), ``nbr_mask: B x N x M`` bool
        or None -> ``B x N x C``. ``cluster_size``: set when ``x`` is in clustering order
        and ``nbr_idx`` lists whole clusters (a stage's blocks): inference then gathers
        once per cluster (:func:`~fusion_necks.ops.nbhd_attention.cluster_nbhd_attention`).
    """

    def __init__(self, dim: int, num_heads: int, rel_pos_dim: int = 5, blank_token: bool = True,
                 proj_drop: float = 0.0, max_elements: int = 1 << 22,
                 mask_value: Optional[float] = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim ({dim}) must be divisible by num_heads ({num_heads})')
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.max_elements = max_elements
        self.mask_value = mask_value
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.rel_pos_bias = nn.Linear(rel_pos_dim, num_heads)
        if blank_token:
            self.blank_k = nn.Parameter(torch.randn(dim))
            self.blank_v = nn.Parameter(torch.randn(dim))
        else:
            self.register_parameter('blank_k', None)
            self.register_parameter('blank_v', None)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, nbr_idx: Tensor, rel: Tensor,
                nbr_mask: Optional[Tensor] = None,
                cluster_size: Optional[int] = None) -> Tensor:
        b, n, c = x.shape
        h, d = self.num_heads, self.head_dim
        q = self.q(x).view(b, n, h, d) * self.scale
        k, v = self.kv(x).view(b, n, 2, h, d).unbind(2)
        bias = self.rel_pos_bias(rel.to(self.rel_pos_bias.weight.dtype))  # B' x N x M x H
        if bias.shape[0] != b:
            bias = bias.expand(b, -1, -1, -1)
        if nbr_idx.shape[0] != b:
            nbr_idx = nbr_idx.expand(b, -1, -1)
        if nbr_mask is not None and nbr_mask.shape[0] != b:
            nbr_mask = nbr_mask.expand(b, -1, -1)
        blank_k = None if self.blank_k is None else self.blank_k.view(h, d)
        blank_v = None if self.blank_v is None else self.blank_v.view(h, d)
        out = nbhd_attention(q, k, v, nbr_idx, bias, nbr_mask, blank_k, blank_v,
                             max_elements=self.max_elements, mask_value=self.mask_value,
                             cluster_size=cluster_size)
        return self.proj_drop(self.proj(out.reshape(b, n, c)))

    def extra_repr(self) -> str:
        return (f'dim={self.dim}, num_heads={self.num_heads}, '
                f'blank_token={self.blank_k is not None}')
