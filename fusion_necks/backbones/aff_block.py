"""AutoFocusFormer transformer block: pre-norm local attention + MLP."""
from typing import Optional

import torch
from torch import Tensor, nn

from .aff_attention import AFFNeighbourhoodAttention


def drop_path(x: Tensor, drop_prob: float, training: bool) -> Tensor:
    """Stochastic depth per sample (Huang et al. 2016): zero whole residual branches."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0], ) + (1, ) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module wrapper of :func:`drop_path`."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class AFFMlp(nn.Module):
    """``Linear(C -> rC) -> GELU -> Dropout -> Linear(rC -> C) -> Dropout``."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class AFFBlock(nn.Module):
    """One AutoFocusFormer block (CVPR 2023, Fig. 2; official ``ClusterTransformerBlock``).

        x = x + DropPath(gamma1 * Attn(LN(x)))
        x = x + DropPath(gamma2 * MLP(LN(x)))

    Args:
        dim: channels ``C``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width ``int(C * mlp_ratio)``.
        rel_pos_dim: position-bias input features (5 expanded, 2 plain).
        blank_token: learnable blank key/value in the attention.
        drop: dropout after the attention projection and in the MLP.
        drop_path: stochastic-depth rate of this block.
        layer_scale: initial value of the per-channel ``gamma1``/``gamma2`` (NAT-style
            layer scale); 0 disables them (Mini/Tiny), 1e-5 for Small/Base.
        max_elements: chunk bound of the attention op.
        mask_value: None (padded slots excluded exactly) or the official additive
            ``-100.0`` (see :func:`~fusion_necks.ops.nbhd_attention`).

    Shapes: ``x: B x N x C`` plus the neighbourhood tensors of
    :class:`AFFNeighbourhoodAttention` -> ``B x N x C``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, rel_pos_dim: int = 5,
                 blank_token: bool = True, drop: float = 0.0, drop_path: float = 0.0,
                 layer_scale: float = 0.0, max_elements: int = 1 << 22,
                 mask_value: Optional[float] = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = AFFNeighbourhoodAttention(dim, num_heads, rel_pos_dim, blank_token, drop,
                                              max_elements, mask_value)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = AFFMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path)
        if layer_scale > 0:
            self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
            self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale)))
        else:
            self.register_parameter('gamma1', None)
            self.register_parameter('gamma2', None)

    def forward(self, x: Tensor, nbr_idx: Tensor, rel: Tensor,
                nbr_mask: Optional[Tensor] = None,
                cluster_size: Optional[int] = None) -> Tensor:
        y = self.attn(self.norm1(x), nbr_idx, rel, nbr_mask, cluster_size)
        if self.gamma1 is not None:
            y = self.gamma1 * y
        x = x + self.drop_path(y)
        y = self.mlp(self.norm2(x))
        if self.gamma2 is not None:
            y = self.gamma2 * y
        return x + self.drop_path(y)
