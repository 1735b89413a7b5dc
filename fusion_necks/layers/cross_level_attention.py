"""Multi-head cross-level attention of FINE (Eqs. 5-7 of Lee, Lee, Kang, "Context-Guided
Semantic Alignment for Feature Fusion Networks", arXiv 2606.14005), with the token
groupings and kernels that Table 3 compares.

Plain PyTorch (no OpenMMLab imports).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.validation import check_choice, check_int

ATTENTION_GROUPINGS = ('global', 'window', 'area')
ATTENTION_KERNELS = ('softmax', 'linear')


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _partition(x: Tensor, n_h: int, n_w: int, win_h: int, win_w: int) -> Tensor:
    """``B x (n_h*win_h) x (n_w*win_w) x C -> (B*n_h*n_w) x (win_h*win_w) x C``."""
    b, c = x.shape[0], x.shape[-1]
    x = x.view(b, n_h, win_h, n_w, win_w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * n_h * n_w, win_h * win_w, c)


def _unpartition(x: Tensor, b: int, n_h: int, n_w: int, win_h: int, win_w: int) -> Tensor:
    """Inverse of :func:`_partition`."""
    c = x.shape[-1]
    x = x.view(b, n_h, n_w, win_h, win_w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, n_h * win_h, n_w * win_w, c)


def _pad_hw(x: Tensor, height: int, width: int) -> Tensor:
    """Zero-pad a channels-last ``B x H x W x C`` map at the bottom/right."""
    pad_h, pad_w = height - x.shape[1], width - x.shape[2]
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    return x


class CrossLevelAttention(nn.Module):
    """``Concat(head_1..head_h) W_O`` with queries from one map and keys/values from another.

    Eq. 5: ``Q = X_q W_Q``, ``K = X_kv W_K``, ``V = X_kv W_V`` with ``C x C`` projections;
    Eq. 6: ``head_i = Softmax(Q_i K_i^T / sqrt(d)) V_i`` for ``h`` heads of ``d = C / h``
    channels (computed with ``F.scaled_dot_product_attention``); Eq. 7: the heads are
    concatenated and projected by ``W_O``. The paper writes the projections without bias
    (``W in R^{C x C}``); ``bias=True`` gives the ``nn.Linear`` reading of the public code.

    Which keys a query sees (``grouping``), for the variants of Table 3:

    - ``'global'``: every query attends to every key. FINE's AATS runs this on the sampled
      tokens; "vanilla" runs it on all pixels.
    - ``'window'`` (Swin-style, ``window_size`` ``M``): the key map is cut into ``M x M``
      windows and the query map into the windows covering the same image region, i.e.
      ``(sM) x (sM)`` query pixels for ``s = scale_ratio`` (the stride ratio of the two
      maps); each query attends to the ``M^2`` keys of its window, ``O(N_q M^2)``.
    - ``'area'`` (YOLOv12-style, ``num_areas`` ``A``): both maps are cut into ``A``
      horizontal strips covering the same image rows (``ceil(H_k / A)`` key rows, ``s`` times
      as many query rows); each query attends to the keys of its strip,
      ``O(N_q N_k / A)``. Maps with fewer than ``A`` key rows get fewer strips.

    For window/area the maps are zero-padded at the bottom/right to whole windows
    (top-left anchored, like the pyramid); padded keys are masked out of the softmax and
    padded queries are dropped, so no output depends on the padding. A window whose
    queries have no key pixel at all (only possible when the query map is more than ``s``
    times larger than the key map) attends to its padded keys.

    ``kernel='linear'`` (Table 3's "Linear", SimA [26]): no softmax; ``Q`` and ``K`` are
    l1-normalised per channel along the token axis and ``Q (K^T V)`` is computed in
    ``O((N_q + N_k) d^2)``. Because that normalisation over ``N ~ 10^4`` tokens shrinks the
    output by about ``d / N``, each head's output is then RMS-normalised (parameter-free),
    as the public FINE code does with an RMSNorm for the same reason. Only with
    ``grouping='global'``.

    Args:
        channels (int): channels ``C`` of both maps.
        num_heads (int): heads ``h``; ``C`` must be divisible by it.
        bias (bool): biases in ``W_Q, W_K, W_V, W_O``. Default: False (the paper).
        grouping (str): ``'global'``, ``'window'`` or ``'area'``.
        kernel (str): ``'softmax'`` or ``'linear'``.
        window_size (int): ``M`` for ``'window'``. Default: 7 (Table 3).
        num_areas (int): ``A`` for ``'area'``. Default: 4 (Table 3).
        scale_ratio (int): stride of the key map over stride of the query map (2 for
            adjacent FPN levels); pairs the regions of ``'window'`` and ``'area'``.
        zeros_init (bool): start ``W_O`` (and its bias) at zero, so the output starts at
            zero; ``W_Q, W_K, W_V`` stay Xavier. Default: False (Xavier ``W_O``).

    Shapes:
        query_map ``B x C x H_q x W_q``, key_map ``B x C x H_k x W_k`` ->
        ``B x C x H_q x W_q`` (``M_hat`` of Eq. 7, reshaped to the query grid).
    """

    def __init__(self,
                 channels: int,
                 num_heads: int,
                 bias: bool = False,
                 grouping: str = 'global',
                 kernel: str = 'softmax',
                 window_size: int = 7,
                 num_areas: int = 4,
                 scale_ratio: int = 2,
                 zeros_init: bool = False) -> None:
        super().__init__()
        check_int('channels', channels)
        check_int('num_heads', num_heads)
        check_int('window_size', window_size)
        check_int('num_areas', num_areas)
        check_int('scale_ratio', scale_ratio)
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by num_heads ({num_heads})')
        check_choice('grouping', grouping, ATTENTION_GROUPINGS)
        check_choice('kernel', kernel, ATTENTION_KERNELS)
        if kernel == 'linear' and grouping != 'global':
            raise ValueError("kernel='linear' is only implemented with grouping='global'")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.grouping = grouping
        self.kernel = kernel
        self.window_size = window_size
        self.num_areas = num_areas
        self.scale_ratio = scale_ratio
        self.zeros_init = bool(zeros_init)
        self.q_proj = nn.Linear(channels, channels, bias=bias)
        self.k_proj = nn.Linear(channels, channels, bias=bias)
        self.v_proj = nn.Linear(channels, channels, bias=bias)
        self.out_proj = nn.Linear(channels, channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier-uniform weights and zero biases, as nn.MultiheadAttention; with
        # zeros_init, W_O starts at zero so that the output starts at zero (mmcv's
        # NonLocal2d(zeros_init=True) does the same for its residual branch).
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(proj.weight)
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)
        if self.zeros_init:
            nn.init.zeros_(self.out_proj.weight)

    # ------------------------------------------------------------------ grouping
    def _windows(self, hq: int, wq: int, hk: int, wk: int) -> Tuple[int, int, int, int]:
        """Grid ``(n_h, n_w)`` and key-window size ``(win_h, win_w)`` for window/area."""
        s = self.scale_ratio
        cover_h = max(hk, _ceil_div(hq, s))  # key rows needed to cover both maps
        cover_w = max(wk, _ceil_div(wq, s))
        if self.grouping == 'window':
            win_h = win_w = self.window_size
            return _ceil_div(cover_h, win_h), _ceil_div(cover_w, win_w), win_h, win_w
        win_h = _ceil_div(cover_h, self.num_areas)
        return _ceil_div(cover_h, win_h), 1, win_h, cover_w

    def _heads(self, x: Tensor) -> Tensor:
        """``B x N x C -> B x h x N x d``, contiguous (the CPU flash kernel of
        ``scaled_dot_product_attention`` is about 2x faster on contiguous inputs)."""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def _attend(self, q: Tensor, k: Tensor, v: Tensor,
                key_mask: Optional[Tensor] = None) -> Tensor:
        """Token groups ``G x N x C`` -> ``G x N_q x C`` (heads concatenated, before W_O)."""
        g, n_q, c = q.shape
        q, k, v = self._heads(q), self._heads(k), self._heads(v)
        if self.kernel == 'softmax':
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        else:
            eps = torch.finfo(q.dtype).eps
            q = q / q.abs().sum(dim=-2, keepdim=True).clamp_min(eps)
            k = k / k.abs().sum(dim=-2, keepdim=True).clamp_min(eps)
            out = q @ (k.transpose(-2, -1) @ v)
            out = out * torch.rsqrt(out.pow(2).mean(dim=-1, keepdim=True) + eps)
        return out.transpose(1, 2).reshape(g, n_q, c)

    def forward(self, query_map: Tensor, key_map: Tensor) -> Tensor:
        b, c, hq, wq = query_map.shape
        if key_map.shape[:2] != (b, c):
            raise ValueError(f'key_map must be {b} x {c} x H x W like query_map, got '
                             f'{tuple(key_map.shape)}')
        hk, wk = key_map.shape[-2:]
        # Channels-last tokens; the projections act per token (Eq. 5).
        q = self.q_proj(query_map.permute(0, 2, 3, 1))   # B x Hq x Wq x C
        kv_in = key_map.permute(0, 2, 3, 1)
        k = self.k_proj(kv_in)                            # B x Hk x Wk x C
        v = self.v_proj(kv_in)

        if self.grouping == 'global':
            out = self._attend(q.reshape(b, hq * wq, c), k.reshape(b, hk * wk, c),
                               v.reshape(b, hk * wk, c))
            out = self.out_proj(out).view(b, hq, wq, c)
            return out.permute(0, 3, 1, 2)

        s = self.scale_ratio
        n_h, n_w, win_h, win_w = self._windows(hq, wq, hk, wk)
        kh, kw = n_h * win_h, n_w * win_w
        q = _partition(_pad_hw(q, kh * s, kw * s), n_h, n_w, win_h * s, win_w * s)
        k = _partition(_pad_hw(k, kh, kw), n_h, n_w, win_h, win_w)
        v = _partition(_pad_hw(v, kh, kw), n_h, n_w, win_h, win_w)
        key_mask = None
        if kh != hk or kw != wk:
            valid = torch.zeros(1, kh, kw, 1, dtype=torch.bool, device=q.device)
            valid[:, :hk, :wk] = True
            valid = _partition(valid, n_h, n_w, win_h, win_w)[..., 0]     # n_win x N_k
            valid = valid | ~valid.any(dim=-1, keepdim=True)
            key_mask = valid.repeat(b, 1)[:, None, None, :]                # G x 1 x 1 x N_k
        out = self.out_proj(self._attend(q, k, v, key_mask))
        out = _unpartition(out, b, n_h, n_w, win_h * s, win_w * s)[:, :hq, :wq]
        return out.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        s = (f'channels={self.channels}, num_heads={self.num_heads}, '
             f'grouping={self.grouping!r}, kernel={self.kernel!r}')
        if self.grouping == 'window':
            s += f', window_size={self.window_size}, scale_ratio={self.scale_ratio}'
        elif self.grouping == 'area':
            s += f', num_areas={self.num_areas}, scale_ratio={self.scale_ratio}'
        return s


__all__ = ['ATTENTION_GROUPINGS', 'ATTENTION_KERNELS', 'CrossLevelAttention']
