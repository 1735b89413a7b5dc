"""FINE: Feature Interaction NEtwork.

Lee, Lee, Kang, "Context-Guided Semantic Alignment for Feature Fusion Networks",
arXiv 2606.14005 (2026), Sections 4.1-4.4, Table 3-6, Appendix B. The paper is the
specification; where the authors' public code (``HyungseopLee/FINE-FPN``) reads it
differently, that reading is an option here and the docstring says so.

Plain PyTorch (no OpenMMLab imports): used by the FPN+FINE necks in
``fusion_necks.necks``, and timed on machines that have no mm* packages.
"""
import logging
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.validation import check_choice, check_int
from .block_ops import pool_and_modulate
from .cross_level_attention import CrossLevelAttention
from .token_sampling import TOKEN_SAMPLING_MODES, TokenSampler

# attention -> (AATS token sampling?, grouping, kernel)
FINE_ATTENTIONS = {
    'aats': (True, 'global', 'softmax'),
    'vanilla': (False, 'global', 'softmax'),
    'window': (False, 'window', 'softmax'),
    'area': (False, 'area', 'softmax'),
    'linear': (False, 'global', 'linear'),
    'aats_linear': (True, 'global', 'linear'),
}
FINE_MODULATIONS = ('residual', 'direct', 'none')
FINE_UPSAMPLE_MODES = ('nearest', 'bilinear', 'bicubic')
DEFAULT_HEAD_DIM = 16

logger = logging.getLogger(__name__)


def default_num_heads(channels: int, head_dim: int = DEFAULT_HEAD_DIM) -> int:
    """Heads ``h`` when neither ``num_heads`` nor ``head_dim`` is given.

    The paper fixes the per-head dimension ``d = 16`` and adjusts ``h = C / d`` (Sec.
    5.3.3, Table 4). Rule:

    - ``d = 16`` whenever 16 divides ``C``: ``h = C / 16`` (e.g. 16 heads at ``C = 256``,
      8 at ``C = 128``);
    - otherwise ``h`` is the divisor of ``C`` nearest to ``C / 16`` (``C = 8`` -> ``h =
      1``, ``d = 8``; ``C = 40`` -> ``h = 2``, ``d = 20``; ``C = 100`` -> ``h = 5``, ``d =
      20``). On a tie (one divisor below ``C / 16`` and one above, equally far) the larger
      head count wins, whose ``d`` is the nearer to 16 by ratio (``C = 24``: ``h = 1`` and
      ``h = 2`` are both 0.5 from 1.5 -> ``h = 2``, ``d = 12``). Table 4 finds ``d = 8``
      as good as ``d = 16`` at ``C = 256``, and only ``d < 8`` or very few heads worse.

    Args:
        channels (int): ``C``.
        head_dim (int): the target ``d``. Default: 16.

    Returns:
        int: ``h``, a divisor of ``channels``.
    """
    check_int('channels', channels)
    check_int('head_dim', head_dim)
    if channels % head_dim == 0:
        return channels // head_dim
    target = channels / head_dim
    divisors = [h for h in range(1, channels + 1) if channels % h == 0]
    return min(divisors, key=lambda h: (abs(h - target), -h))


def resolve_heads(channels: int, num_heads: Optional[int], head_dim: Optional[int]) -> int:
    """Number of heads from ``num_heads`` and/or ``head_dim``.

    Neither given (the default): :func:`default_num_heads` (``d = 16`` where 16 divides
    ``C``, else the nearest valid head count, with a warning on the ``fusion_necks``
    logger). Given explicitly, they must fit ``C`` exactly, or a ``ValueError`` names the
    argument and the values that would work.
    """
    if num_heads is None and head_dim is None:
        heads = default_num_heads(channels)
        if channels % DEFAULT_HEAD_DIM:
            logger.warning(default_heads_message(channels, heads))
        return heads
    if num_heads is not None:
        check_int('num_heads', num_heads)
        if channels % num_heads:
            raise ValueError(f'channels ({channels}) must be divisible by num_heads '
                             f'({num_heads}): num_heads must be one of '
                             f'{_divisors(channels)}, or leave num_heads and head_dim unset '
                             f'for the default (d = {DEFAULT_HEAD_DIM} where it divides C)')
        if head_dim is not None and num_heads * head_dim != channels:
            raise ValueError(f'num_heads ({num_heads}) x head_dim ({head_dim}) must equal '
                             f'channels ({channels}); set only one of them')
        return num_heads
    check_int('head_dim', head_dim)
    if channels % head_dim:
        raise ValueError(f'channels ({channels}) must be divisible by head_dim ({head_dim}): '
                         f'head_dim must be one of {_divisors(channels)}, or leave num_heads '
                         f'and head_dim unset for the default (d = {DEFAULT_HEAD_DIM} where '
                         f'it divides C, else h = {default_num_heads(channels)} heads here)')
    return channels // head_dim


def _divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


def default_heads_message(channels: int, heads: int) -> str:
    """The log line of the head rule (:func:`default_num_heads`) when 16 does not divide C."""
    return (f'FINE: channels C={channels} is not divisible by the default head_dim '
            f'd={DEFAULT_HEAD_DIM}; using num_heads={heads} (head_dim={channels // heads}), '
            f'the divisor of {channels} nearest to C/{DEFAULT_HEAD_DIM}='
            f'{channels / DEFAULT_HEAD_DIM:g} (ties: more heads). Set num_heads or head_dim '
            f'(fine_cfg in FINEFPN) to choose.')


class FINE(nn.Module):
    """Aligns a low-level map with its high-level neighbour: ``FINE(F_low, F_high)``.

    Default (the paper, Fig. 2):

    1. Alignment-Aware Token Sampling (Eq. 4): ``F_high`` is sampled with kernel ``k``,
       ``F_low`` with kernel ``r k`` (non-overlapping, average pooling), so for adjacent
       levels (stride ratio ``r = 2``) both token grids cover the same image regions.
    2. Bottleneck multi-head cross-level attention (Eqs. 5-7): queries from the low tokens,
       keys and values from the high tokens, ``C x C`` projections ``W_Q, W_K, W_V, W_O``,
       ``h`` heads of ``d = C / h`` channels (default ``d = 16``), softmax scaled by
       ``sqrt(d)``, giving ``M_hat`` on the low token grid.
    3. ``M = Up(M_hat, scale=r k)`` (Eq. 8, nearest by default), cropped to the low map.
    4. Residual spatial-channel modulation (Eq. 9): ``F_low * M + F_low``.

    Any input size works. Token ``(i, j)`` of the low grid summarises low pixels
    ``[i rk, (i+1) rk) x [j rk, (j+1) rk)`` clipped to the map (``ceil`` grids, top-left
    anchored like the pyramid; partial border windows are averaged over the pixels they
    contain, see :class:`TokenSampler`), so ``Up`` by ``rk`` followed by a crop to
    ``H_low x W_low`` gives every low pixel the modulation of the token that contains it:
    nothing is stretched or shifted. The two grids need not have the same size (the
    attention is global), e.g. for ``r != 2`` or unusual inputs.

    Ablation switches (Section 5.3, Table 3, Table 6, Appendix B):

    - ``attention``: ``'aats'`` (default), ``'vanilla'`` (dense pixel-to-pixel attention
      of every low pixel to every high pixel), ``'window'`` (``window_size x
      window_size`` high windows, Swin-style), ``'area'`` (``num_areas`` strips,
      YOLOv12-style), ``'linear'`` (SimA-style kernel attention on all pixels); see
      :class:`CrossLevelAttention`. The four non-AATS variants work on full-resolution
      pixels (Table 3's complexities) and produce ``M`` directly at the low resolution;
      ``ratio``, ``kernel_size``, ``pooling`` and ``upsample_mode`` do not apply to them.
      ``'aats_linear'`` is the public code's reading: AATS tokens with the linear kernel
      instead of softmax.
    - ``ratio`` ``r`` (Fig. 5: 1, 2, 4) and ``kernel_size`` ``k`` (Fig. 5: 1, 2).
    - ``num_heads`` / ``head_dim`` (Table 4).
    - ``pooling``: ``'avg'`` (default), ``'max'``, ``'dwconv'`` (Table 6).
    - ``modulation`` (Section 5.3.4): ``'residual'`` (Eq. 9), ``'direct'``
      (``F_low * M``; the public code's plain multiply), ``'none'`` (``M`` itself is the
      aligned feature).
    - ``upsample_mode`` of Eq. 8: ``'nearest'`` (default), ``'bilinear'`` (the public
      code) or ``'bicubic'``; interpolation uses ``align_corners=False`` on the ``rk``
      times larger grid, whose pixel centres coincide with the low pixels before the
      crop.

    Not implemented from the public code (the paper does not describe them): its sin-cos
    position embedding, the LayerNorms and the FFN after the attention.

    Initialisation (the paper does not state one): ``W_Q, W_K, W_V`` are Xavier-uniform
    (as ``nn.MultiheadAttention``). ``W_O`` is zero by default when the modulation is
    ``'residual'``, so ``M = 0`` and FINE starts as the identity (``F_low^aligned =
    F_low``, the "conservative refinement pathway" of Sec. 4.4; mmcv's
    ``NonLocal2d(zeros_init=True)`` starts its residual attention branch the same way).
    ``W_O`` receives a gradient from the first step and the other projections from the
    second. With a random ``W_O``, ``F_low * M`` rescales every lateral by a random
    ``O(1)`` factor from step 0 and roughly triples the gradient norm of a detector
    trained from scratch (measured on the synthetic quickstart, see docs/fine.md);
    ``zeros_init=False`` gives that Xavier reading. ``'direct'`` and ``'none'`` keep a
    Xavier ``W_O`` by default: there a zero ``M`` would switch ``F_low`` off.

    The recording tools (:func:`~fusion_necks.layers.set_fusion_weight_recording`, forward
    hooks; nothing in this module) keep from the last forward pass (Figure 8): ``'high'`` ``B x C x H_high x W_high`` (``F_high``),
    ``'low'`` ``B x C x H x W`` (``F_low``), ``'M'`` ``B x C x H x W`` (the upsampled
    modulation map) and ``'aligned'`` ``B x C x H x W`` (the output).

    Args:
        channels (int): channels ``C`` of ``F_low`` and ``F_high``.
        kernel_size (int): ``k``, the sampling kernel of ``F_high``. Default: 1.
        ratio (int): ``r``, so ``F_low`` is sampled with kernel ``r k``. Default: 2.
        num_heads (int, optional): heads ``h``. Give this or ``head_dim``.
        head_dim (int, optional): ``d``; ``h = C / d``. Default (neither given): ``d =
            16`` where 16 divides ``C``, otherwise the divisor of ``C`` nearest to ``C / 16``
            heads (ties: more heads), logged as a warning (:func:`default_num_heads`). An
            explicit value that does not divide ``C`` raises.
        attention (str): see above. Default: ``'aats'``.
        pooling (str): ``Down`` operator of AATS. Default: ``'avg'``.
        modulation (str): see above. Default: ``'residual'``.
        upsample_mode (str): ``Up`` of Eq. 8. Default: ``'nearest'``.
        bias (bool): biases in the four projections. Default: False (Eq. 5 has none;
            the public code uses ``nn.Linear`` with bias).
        window_size (int): window side of ``attention='window'``. Default: 7.
        num_areas (int): areas of ``attention='area'``. Default: 4.
        scale_ratio (int): stride of ``F_high`` over stride of ``F_low`` (2 in an FPN),
            used by ``'window'``/``'area'`` to pair regions. Default: 2.
        zeros_init (bool, optional): start ``W_O`` at zero (see above). Default: None,
            i.e. True for ``modulation='residual'`` and False otherwise.
        high_channels (int, optional): channels of ``F_high`` if they differ from
            ``channels``; only checked (FINE needs equal channels, Appendix C: project
            ``F_high`` with a 1x1 conv first).

    Shapes:
        low ``B x C x H x W``, high ``B x C x H_high x W_high`` -> ``B x C x H x W``.
    """

    def __init__(self,
                 channels: int,
                 kernel_size: int = 1,
                 ratio: int = 2,
                 num_heads: Optional[int] = None,
                 head_dim: Optional[int] = None,
                 attention: str = 'aats',
                 pooling: str = 'avg',
                 modulation: str = 'residual',
                 upsample_mode: str = 'nearest',
                 bias: bool = False,
                 window_size: int = 7,
                 num_areas: int = 4,
                 scale_ratio: int = 2,
                 zeros_init: Optional[bool] = None,
                 high_channels: Optional[int] = None) -> None:
        super().__init__()
        check_int('channels', channels)
        if high_channels is not None and high_channels != channels:
            raise ValueError(
                f'FINE needs F_low and F_high with the same channel count (W_Q, W_K, W_V are '
                f'C x C, Eq. 5): got channels={channels}, high_channels={high_channels}; '
                f'project F_high to {channels} channels with a 1x1 conv first (Appendix C)')
        check_int('kernel_size', kernel_size)
        check_int('ratio', ratio)
        check_choice('attention', attention, FINE_ATTENTIONS)
        check_choice('pooling', pooling, TOKEN_SAMPLING_MODES)
        check_choice('modulation', modulation, FINE_MODULATIONS)
        check_choice('upsample_mode', upsample_mode, FINE_UPSAMPLE_MODES)
        heads = resolve_heads(channels, num_heads, head_dim)
        if zeros_init is None:
            zeros_init = modulation == 'residual'
        elif not isinstance(zeros_init, bool):
            raise ValueError(f'zeros_init must be True, False or None, got {zeros_init!r}')

        self.channels = channels
        self.kernel_size = kernel_size
        self.ratio = ratio
        self.attention = attention
        self.pooling = pooling
        self.modulation = modulation
        self.upsample_mode = upsample_mode
        self.zeros_init = zeros_init
        self.sampled, grouping, kernel = FINE_ATTENTIONS[attention]
        if self.sampled:
            self.low_sampler = TokenSampler(channels, ratio * kernel_size, pooling)
            self.high_sampler = TokenSampler(channels, kernel_size, pooling)
        else:
            self.low_sampler = self.high_sampler = None
        self.attn = CrossLevelAttention(channels, heads, bias=bias, grouping=grouping,
                                        kernel=kernel, window_size=window_size,
                                        num_areas=num_areas, scale_ratio=scale_ratio,
                                        zeros_init=zeros_init)

    @property
    def num_heads(self) -> int:
        return self.attn.num_heads

    @property
    def up_factor(self) -> int:
        """``r k`` for AATS (Eq. 8), 1 for the full-resolution variants."""
        return self.ratio * self.kernel_size if self.sampled else 1

    # ------------------------------------------------------------------ Eq. 8
    def upsample(self, m_hat: Tensor, height: int, width: int) -> Tensor:
        """``M = Up(M_hat, scale=rk)`` cropped to ``height x width`` (Eq. 8)."""
        f = self.up_factor
        if f > 1:
            kw = {} if self.upsample_mode == 'nearest' else dict(align_corners=False)
            m_hat = F.interpolate(m_hat, scale_factor=f, mode=self.upsample_mode, **kw)
        return m_hat[..., :height, :width]

    def _modulate(self, low: Tensor, m: Tensor) -> Tensor:
        """Eq. 9 (``'residual'``) or its ablations; ``m`` broadcasts against ``low``."""
        if self.modulation == 'residual':
            return torch.addcmul(low, low, m)  # low * M + low, one pass
        if self.modulation == 'direct':
            return low * m
        return m.expand_as(low)

    def _lean_path(self, h: int, w: int) -> bool:
        f = self.up_factor
        return (self.sampled and f > 1 and self.pooling == 'avg'
                and self.upsample_mode == 'nearest' and self.modulation == 'residual'
                and h % f == 0 and w % f == 0)

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        if low.dim() != 4 or high.dim() != 4:
            raise ValueError(f'FINE expects 4D maps, got low {tuple(low.shape)} and high '
                             f'{tuple(high.shape)}')
        b, c, h, w = low.shape
        if c != self.channels or high.shape[:2] != (b, c):
            raise ValueError(f'FINE(channels={self.channels}) expects low and high of shape '
                             f'B x {self.channels} x H x W with the same B, got low '
                             f'{tuple(low.shape)} and high {tuple(high.shape)}')
        if not self.sampled:
            m = self.attn(low, high)                               # M at full resolution
            out = self._modulate(low, m)
        elif self._lean_path(h, w):
            # the paper's default (avg pooling, nearest Up, residual modulation) with
            # sizes that divide: same numbers, fewer full-size passes in the backward
            # (block_ops.pool_and_modulate)
            high_tokens = self.high_sampler(high)
            out = pool_and_modulate(low, self.up_factor,                    # Eqs. 4, 8, 9
                                    lambda low_tokens: self.attn(low_tokens, high_tokens))
        else:
            m_hat = self.attn(self.low_sampler(low), self.high_sampler(high))  # Eqs. 4-7
            f = self.up_factor
            if (self.upsample_mode == 'nearest' and self.modulation != 'none'
                    and h % f == 0 and w % f == 0):
                # Eqs. 8-9 without materialising M: each token's modulation broadcasts
                # over its f x f block of low pixels (same numbers as the general path).
                low6 = low.reshape(b, c, h // f, f, w // f, f)
                m6 = m_hat.reshape(b, c, h // f, 1, w // f, 1)
                out = self._modulate(low6, m6).reshape(b, c, h, w)
            else:
                out = self._modulate(low, self.upsample(m_hat, h, w))
        return out

    def extra_repr(self) -> str:
        s = f'channels={self.channels}, attention={self.attention!r}'
        if self.sampled:
            s += (f', kernel_size={self.kernel_size}, ratio={self.ratio}, '
                  f'pooling={self.pooling!r}, upsample_mode={self.upsample_mode!r}')
        return s + f', modulation={self.modulation!r}'


__all__ = ['DEFAULT_HEAD_DIM', 'FINE', 'FINE_ATTENTIONS', 'FINE_MODULATIONS',
           'FINE_UPSAMPLE_MODES', 'default_heads_message', 'default_num_heads', 'resolve_heads']
