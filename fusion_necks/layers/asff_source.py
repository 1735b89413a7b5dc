"""ASFF's building block: bring one pyramid level to a target level, predict its weight.

Liu, Huang, Wang, "Learning Spatial Fusion for Single-Shot Object Detection"
(arXiv:1911.09516), Sec. 3.1 "feature resizing" and Sec. 3.2 "adaptive fusion".
One :class:`ASFFSource` handles one (source level n -> target level l) pair; the
per-level fusion module (:class:`fusion_necks.layers.ASFFLevelFusion`) owns one per
source and does the softmax and the weighted sum.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# check_choice is also imported from here by fusion_necks.necks.asff_neck
from ..utils.validation import check_choice, check_int  # noqa: F401
from .conv_norm_act import ConvNormAct

FINER_RESIZE_MODES = ('official', 'pool', 'conv')
COARSER_CONV_MODES = ('always', 'auto')
WEIGHT_MODES = ('full', 'simple', 'uniform')
UPSAMPLE_MODES = ('nearest', 'bilinear', 'bicubic', 'nearest-exact')

DEFAULT_NORM_CFG = dict(type='BN')
DEFAULT_ACT_CFG = dict(type='LeakyReLU', negative_slope=0.1)


def narrow_norm_cfg(norm_cfg: Optional[dict], channels: int,
                    wide_channels: int) -> Optional[dict]:
    """``norm_cfg`` for the narrow weight-compression conv (``compress_c`` channels).

    GroupNorm configured for the wide layers (e.g. 32 groups for 256 channels) does not
    divide 16 or 8 channels. The narrow conv gets groups of as many channels as the
    wide layers have (``wide_channels // num_groups``: 8 for GN(32) on 256, so GN(2) on 16
    channels; 4 on 128, so GN(4)), rounded to a divisor of ``channels``. One channel per
    group (``gcd(32, 16)`` groups) would be an instance norm, undefined on the 1x1 maps of
    small images (P7 of a 128 px input) and weak on the 3x3 ones.
    """
    if norm_cfg is None or norm_cfg.get('type') != 'GN' or 'num_groups' not in norm_cfg:
        return norm_cfg
    per_group = max(1, wide_channels // int(norm_cfg['num_groups']))
    groups = math.gcd(max(1, channels // per_group), channels)
    return dict(norm_cfg, num_groups=groups)


def max_pool_3x3_s2(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, 3, stride=2, padding=1)``, exactly, and faster when no gradient is needed.

    ``B x C x H x W -> B x C x ceil(H/2) x ceil(W/2)``. PyTorch's CPU max-pool computes
    argmax indices even in inference; at 256 x 100 x 168 it took ~26 ms on one core,
    a quarter of ASFF's time. Without autograd the pool is evaluated as two separable
    strided maxima over a ``-inf`` padded copy (rows, then columns): the same values (a max
    is exact), ~5x faster on CPU. With autograd the native op is used, whose backward
    routes the gradient to one argmax (the separable form would split it on ties, and its
    backward is slower).
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 3, stride=2, padding=1)
    h, w = x.shape[-2:]
    ho, wo = (h + 1) // 2, (w + 1) // 2
    # pad 1 before, and after up to the last window's end (2 * out + 1 entries in all)
    xp = F.pad(x, (1, 2 * wo - w, 1, 2 * ho - h), value=float('-inf'))
    r = torch.maximum(torch.maximum(xp[..., 0:2 * ho - 1:2, :], xp[..., 1:2 * ho:2, :]),
                      xp[..., 2:2 * ho + 1:2, :])
    return torch.maximum(torch.maximum(r[..., 0:2 * wo - 1:2], r[..., 1:2 * wo:2]),
                         r[..., 2:2 * wo + 1:2])


class ASFFSource(nn.Module):
    """Resize one source level to the target level and compute its weight features.

    Resizing (``x^{n->l}`` in the paper), with ``s = scale_step`` = how many factor-2
    steps the source is finer than the target (``s > 0``: finer, ``s < 0``: coarser):

    * ``s == 0``: identity; a 1x1 ConvNormAct only when the widths differ.
    * ``s > 0`` (finer source, downsample by ``2**s``), ``finer_resize``:

      - ``'official'`` (paper / official code): ``s - 1`` max-pools (3x3, stride 2,
        pad 1), then one 3x3 stride-2 ConvNormAct ``C_in -> C_out``. For ``s <= 2``
        this is exactly the official module (1/2: stride-2 conv; 1/4: max-pool then
        stride-2 conv); for larger factors it is the OpenMMLab PR #8778 reading.
      - ``'pool'``: one max-pool with kernel = stride = ``2**(s-1)`` (ceil mode), then
        the 3x3 stride-2 ConvNormAct. Same sizes and parameters as ``'official'``,
        one pooling op instead of ``s - 1``.
      - ``'conv'``: ``s`` chained 3x3 stride-2 ConvNormActs (the first changes the
        width). Less lossy for large factors, ``s - 1`` extra 3x3 convs of parameters.

      Each step rounds up (``ceil(H / 2)``), which matches mmdet's pyramids (stride-2
      convs with pad 1, ``max_pool2d(1, stride=2)``). If a pyramid rounds differently
      the result is brought to the exact target size by nearest interpolation.
    * ``s < 0`` (coarser source): a 1x1 ConvNormAct ``C_in -> C_out`` at the coarse
      resolution, then interpolation to the **exact** target size (never a fixed scale
      factor, so 7x11 fuses with 13x21). ``coarser_conv='always'`` applies the 1x1
      conv for every coarser source (the paper's text); ``'auto'`` only when the widths
      differ (the official code: at level 2 the 256-ch level 1 is only upsampled).

    Weight features (``weight_mode``):

    * ``'full'`` (official code): 1x1 ConvNormAct ``C_out -> compress_c``; the fusion
      module concatenates these over the sources and maps them to the logits. With
      GN, its groups keep the wide layers' channels per group (:func:`narrow_norm_cfg`).
    * ``'simple'`` (the explainer / the paper's wording "1x1 convolution layers"):
      a plain 1x1 ``Conv2d(C_out, 1)`` with bias gives the logit ``lambda_n`` directly,
      ``C_out + 1`` parameters per source.

    Args:
        in_channels: channels of the source level, C_in.
        out_channels: channels at the target level (the fusion width), C_out.
        scale_step: ``log2(stride_target / stride_source)``.
        weight_mode: ``'full'`` or ``'simple'``.
        compress_c: channels of the weight features in ``'full'`` mode.
        finer_resize: ``'official'``, ``'pool'`` or ``'conv'``.
        coarser_conv: ``'always'`` or ``'auto'``.
        upsample_mode: ``F.interpolate`` mode for coarser sources.
        norm_cfg / act_cfg: of every ConvNormAct (official: BN + LeakyReLU(0.1)).

    Shapes: ``forward(x, size)``: ``B x C_in x H_n x W_n -> B x C_out x H_l x W_l``;
    ``weight(resized)``: ``B x compress_c x H_l x W_l`` (full) or ``B x 1 x H_l x W_l``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale_step: int,
                 weight_mode: str = 'full',
                 compress_c: int = 16,
                 finer_resize: str = 'official',
                 coarser_conv: str = 'always',
                 upsample_mode: str = 'nearest',
                 norm_cfg: Optional[dict] = DEFAULT_NORM_CFG,
                 act_cfg: Optional[dict] = DEFAULT_ACT_CFG) -> None:
        super().__init__()
        check_choice('weight_mode', weight_mode, WEIGHT_MODES)
        check_choice('finer_resize', finer_resize, FINER_RESIZE_MODES)
        check_choice('coarser_conv', coarser_conv, COARSER_CONV_MODES)
        check_choice('upsample_mode', upsample_mode, UPSAMPLE_MODES)
        check_int('in_channels', in_channels)
        check_int('out_channels', out_channels)
        if weight_mode == 'full':
            check_int('compress_c', compress_c)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_step = int(scale_step)
        self.weight_mode = weight_mode
        self.finer_resize = finer_resize
        self.upsample_mode = upsample_mode
        cfg = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)

        # parameter-free pooling before the convs (finer sources only)
        self.pool_steps: Tuple[int, ...] = ()   # one kernel/stride per max-pool
        convs = []
        s = self.scale_step
        if s > 0:
            if finer_resize == 'official':
                self.pool_steps = (2, ) * (s - 1)
            elif finer_resize == 'pool' and s > 1:
                self.pool_steps = (2**(s - 1), )
            n_convs = s if finer_resize == 'conv' else 1
            for i in range(n_convs):
                convs.append(ConvNormAct(in_channels if i == 0 else out_channels, out_channels,
                                         3, stride=2, **cfg))
        elif s < 0:
            if coarser_conv == 'always' or in_channels != out_channels:
                convs.append(ConvNormAct(in_channels, out_channels, 1, **cfg))
        elif in_channels != out_channels:
            convs.append(ConvNormAct(in_channels, out_channels, 1, **cfg))
        # `resize.0` is the official module's stride_level_n / compress_level_n
        self.resize = nn.Sequential(*convs)

        if weight_mode == 'full':
            self.weight = ConvNormAct(out_channels, compress_c, 1,
                                      norm_cfg=narrow_norm_cfg(norm_cfg, compress_c,
                                                               out_channels),
                                      act_cfg=act_cfg)
        elif weight_mode == 'simple':
            self.weight = nn.Conv2d(out_channels, 1, 1, bias=True)
        else:   # 'uniform' (control): no weight branch, the fusion uses 1/S
            self.weight = None
        self.weight_channels = {'full': compress_c, 'simple': 1, 'uniform': 0}[weight_mode]

    def forward(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        size = tuple(size)
        if self.scale_step > 0:
            for k in self.pool_steps:
                if k == 2:   # the official 3x3/s2/p1 pool: ceil(H / 2)
                    x = max_pool_3x3_s2(x)
                else:        # one pool for several steps: ceil(H / k)
                    x = F.max_pool2d(x, k, stride=k, ceil_mode=True)
            x = self.resize(x)
            if tuple(x.shape[-2:]) != size:
                x = F.interpolate(x, size=size, mode='nearest')
            return x
        x = self.resize(x)
        if self.scale_step < 0 or tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode=self.upsample_mode,
                              **({} if 'nearest' in self.upsample_mode else
                                 dict(align_corners=False)))
        return x

    def extra_repr(self) -> str:
        return (f'scale_step={self.scale_step}, pool_steps={self.pool_steps}, '
                f'weight_mode={self.weight_mode!r}')
