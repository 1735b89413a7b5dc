"""Block Adaptive Feature Fusion (BAFF).

Huang, Nie, Wang, Li, Yan, Guo, "Block adaptive feature fusion for real-time semantic
segmentation", Acta Automatica Sinica 47(5):1137-1148, 2021 (DOI 10.16383/j.aas.c180645).
Our specification is a published article summarising it (see docs/baff_skipnet.md); the
paper text and code are not public, so every detail the article leaves open is a documented
choice here, with the alternative exposed as an option.

Plain PyTorch (no OpenMMLab imports): used by ``fusion_necks.decode_heads.SkipNetHead``.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.validation import check_choice, check_int
from .conv_norm_act import LayerSpec, get_norm_layer

BAFF_WEIGHT_NETS = ('conv3d', 'conv2d')


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


class PairVolumeConv3d(nn.Conv3d):
    """``Conv3d(1, out_channels, kernel=(2, k, k), stride=(2, s, s), padding=(0, p, p))``
    over a one-channel volume whose depth interleaves two maps (``S_1, D_1, S_2, ...``).

    With depth kernel 2 and depth stride 2 every output depth slice ``c`` sees exactly
    the pair ``(S_c, D_c)``, so the 3D conv equals a 2D conv with 2 input channels applied
    to the ``B * C`` pairs as a batch. ``forward`` computes it that way (the same numbers
    as ``nn.Conv3d.forward``, which PyTorch runs through a slow generic kernel on CPUs);
    parameters and state-dict keys are those of the ``nn.Conv3d``.

    Shapes: ``B x 1 x 2C x H x W`` -> ``B x out_channels x C x H' x W'``.
    """

    def __init__(self, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        pad = kernel_size // 2
        super().__init__(1, out_channels, kernel_size=(2, kernel_size, kernel_size),
                         stride=(2, stride, stride), padding=(0, pad, pad))

    def forward(self, volume: Tensor) -> Tensor:
        b, one, depth, h, w = volume.shape
        if one != 1 or depth % 2:
            raise ValueError(f'PairVolumeConv3d expects B x 1 x 2C x H x W, got '
                             f'{tuple(volume.shape)}')
        pairs = volume.reshape(b * depth // 2, 2, h, w)
        out = F.conv2d(pairs, self.weight.squeeze(1), self.bias, self.stride[1:],
                       self.padding[1:])  # (B*C) x out x H' x W'
        return out.reshape(b, depth // 2, *out.shape[1:]).transpose(1, 2)


class BAFF(nn.Module):
    """Block Adaptive Feature Fusion of a shallow map ``S`` and a deep map ``D``.

    ``out = w * S + (1 - w) * D`` with one learned weight ``w`` in (0, 1) per
    ``block_size x block_size`` block: ``w`` near 1 trusts the shallow (fine, small
    receptive field) map there, near 0 the (upsampled) deep map.

    Weight sub-network (default ``weight_net='conv3d'``, our reading of the article's
    "stacks them into a 3D volume (H x W x 2C) ... compact 3D convolution ...
    depthwise-separable convolutions ... stride-based downsampling ... sigmoid"):

    1. Volume: ``S`` and ``D`` are interleaved along the channel axis into a one-channel
       volume ``B x 1 x 2C x H x W`` (``S_1, D_1, S_2, D_2, ...``).
    2. Compact 3D conv: ``Conv3d(1, mid_channels, kernel=(2, k, k), stride=(2, s, s))``
       compares each channel pair ``(S_c, D_c)`` over a ``k x k`` neighbourhood with a
       kernel shared by all channels (so its size does not depend on ``C``), ReLU, then
       the ``C`` pairwise comparisons are averaged: ``B x mid x H/s x W/s``.
       ``s = 2`` (the first stride-2 step) unless ``block_size == 1``. Computed as a
       batched 2D conv over the ``B * C`` pairs (:class:`PairVolumeConv3d`). Then a
       norm layer.
    3. ``log2(block_size) - 1`` depthwise-separable stages (depthwise ``k x k`` stride 2,
       pointwise 1x1, norm, ReLU) bring the map to one position per block.
    4. A pointwise conv to one channel and a sigmoid give ``B x 1 x ceil(H/b) x ceil(W/b)``
       block weights (its bias starts at 0, so ``w`` starts near 0.5).
    5. Nearest upsampling by ``block_size`` (each weight is copied to its whole block) and
       the fusion above.

    Alternative reading (``weight_net='conv2d'``, an ablation): step 2 is an ordinary
    ``Conv2d(2C, mid_channels, k, stride=s)``, norm, ReLU over ``cat([S, D])`` (a learned
    reduction over channels, ``2C k^2 mid`` parameters), as in concat-conv weight
    predictors such as ASFF; steps 3-5 are the same.

    Normalisation is not mentioned by the article; we normalise (BatchNorm by default)
    because the inputs are unnormalised class scores of arbitrary scale and because the
    tiny ReLU sub-network otherwise often starts with dead units (no gradient at all).
    ``norm_layer=None`` removes it.

    Sizes not divisible by ``block_size``: every stride-2 step (kernel ``k`` odd, padding
    ``k // 2``) maps ``n`` to ``ceil(n / 2)``, so the weight grid is
    ``ceil(H / b) x ceil(W / b)``. Blocks are anchored at the top-left pixel; the last
    block row/column is truncated to the image (``H - b * (ceil(H / b) - 1)`` rows).

    The weight map ``B x 1 x H x W`` (at the resolution of ``S``, constant per block) passes
    through the identity ``weights_tap``, where the recording tools hook in
    (:func:`~fusion_necks.layers.set_fusion_weight_recording`, map ``'weights'``), and is
    returned by
    ``forward(..., return_weights=True)``.

    Args:
        channels (int): channels ``C`` of ``S`` and ``D`` (the number of classes when
            fusing class scores, as in BAFF-SkipNet).
        block_size (int): side ``b`` of the square blocks that share one weight, a power
            of two (1 means one weight per pixel). Default: 8 (the article's 8x8).
        weight_net (str): ``'conv3d'`` (default, the article's 3D conv over the stacked
            volume) or ``'conv2d'`` (2D conv over the concatenation, see above).
        mid_channels (int): channels of the weight sub-network. Default: 2 (97
            parameters per BAFF whatever ``C``: 0.011% of BAFF-SkipNet's parameters for
            two BAFFs, 0.058% of its FLOPs; the article reports 0.002% and 0.001%).
        kernel_size (int): odd spatial kernel of the 3D/2D conv and of the depthwise
            convs. Default: 3.
        norm_layer (callable or dict, optional): the norm after the stem and after each
            pointwise conv: a callable ``norm_layer(num_channels) -> nn.Module`` or an
            mmcv-style ``norm_cfg`` dict (:mod:`fusion_necks.layers.conv_norm_act`);
            ``None`` for no normalisation. Default: ``nn.BatchNorm2d``.
            (:class:`~fusion_necks.decode_heads.SkipNetHead` passes a callable built by
            mmcv's ``build_norm_layer``, so that any mmcv norm type works there.)

    Shapes:
        shallow, deep: ``B x C x H x W`` (the same shape) -> ``B x C x H x W``.
    """

    # panel title of the recorded map in tools/analysis/visualize_fusion_weights.py
    fusion_source_labels = ('w (weight of the shallow map S)',)

    def __init__(self,
                 channels: int,
                 block_size: int = 8,
                 weight_net: str = 'conv3d',
                 mid_channels: int = 2,
                 kernel_size: int = 3,
                 norm_layer: LayerSpec = nn.BatchNorm2d) -> None:
        super().__init__()
        for name, value in (('channels', channels), ('block_size', block_size),
                            ('mid_channels', mid_channels), ('kernel_size', kernel_size)):
            check_int(name, value, prefix='BAFF: ')
        norm_layer = get_norm_layer(norm_layer, 'BAFF: norm_layer')  # a dict or a callable
        if not _is_power_of_two(block_size):
            raise ValueError(
                f'BAFF: block_size must be a power of two (1, 2, 4, 8, 16, ...): the weights '
                f'are brought to one per block by stride-2 steps; got {block_size!r}')
        if kernel_size % 2 == 0:
            raise ValueError(f'BAFF: kernel_size must be odd, got {kernel_size!r}')
        check_choice('weight_net', weight_net, BAFF_WEIGHT_NETS, prefix='BAFF: ')
        self.channels = channels
        self.block_size = block_size
        self.weight_net = weight_net
        self.mid_channels = mid_channels
        self.kernel_size = kernel_size

        num_steps = block_size.bit_length() - 1  # log2(block_size) stride-2 steps
        stem_stride = 2 if num_steps > 0 else 1
        pad = kernel_size // 2
        if weight_net == 'conv3d':
            self.stem = PairVolumeConv3d(mid_channels, kernel_size, stride=stem_stride)
        else:
            self.stem = nn.Conv2d(2 * channels, mid_channels, kernel_size,
                                  stride=stem_stride, padding=pad)
        self.stem_norm = norm_layer(mid_channels) if norm_layer else nn.Identity()
        stages = []
        for _ in range(max(num_steps - 1, 0)):
            stages += [
                # depthwise, stride 2 (no bias: the pointwise conv's bias/norm covers it)
                nn.Conv2d(mid_channels, mid_channels, kernel_size, stride=2, padding=pad,
                          groups=mid_channels, bias=False),
                nn.Conv2d(mid_channels, mid_channels, 1, bias=norm_layer is None),  # pointwise
            ]
            if norm_layer:
                stages.append(norm_layer(mid_channels))
            stages.append(nn.ReLU(inplace=True))
        self.stages = nn.Sequential(*stages)
        self.weight_logit = nn.Conv2d(mid_channels, 1, 1)
        # an identity where the recording tools hook in (layers/fusion_weights.py)
        self.weights_tap = nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default init for convs and norms; the logit bias at 0 (``w`` ~ 0.5)."""
        for m in self.modules():
            if m is not self and hasattr(m, 'reset_parameters'):
                m.reset_parameters()
        nn.init.zeros_(self.weight_logit.bias)

    def block_weights(self, shallow: Tensor, deep: Tensor) -> Tensor:
        """One weight per block: ``B x 1 x ceil(H / b) x ceil(W / b)``, in (0, 1)."""
        b, c, h, w = shallow.shape
        if self.weight_net == 'conv3d':
            volume = torch.stack((shallow, deep), dim=2).reshape(b, 1, 2 * c, h, w)
            x = torch.relu(self.stem(volume))  # B x mid x C x h' x w'
            x = self.stem_norm(x.mean(dim=2))  # B x mid x h' x w', C comparisons averaged
        else:
            x = torch.relu(self.stem_norm(self.stem(torch.cat((shallow, deep), dim=1))))
        x = self.stages(x)
        return torch.sigmoid(self.weight_logit(x))

    def expand_block_weights(self, weights: Tensor, size: Tuple[int, int]) -> Tensor:
        """Nearest upsampling by ``block_size``, cropped to ``size``: ``B x 1 x H x W``."""
        b = self.block_size
        if b > 1:
            weights = weights.repeat_interleave(b, dim=2).repeat_interleave(b, dim=3)
        return weights[:, :, :size[0], :size[1]]

    def forward(self, shallow: Tensor, deep: Tensor,
                return_weights: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        if shallow.shape != deep.shape:
            raise ValueError(f'BAFF: shallow and deep maps must have the same shape, got '
                             f'{tuple(shallow.shape)} and {tuple(deep.shape)}')
        if shallow.dim() != 4 or shallow.shape[1] != self.channels:
            raise ValueError(f'BAFF: expected B x {self.channels} x H x W inputs, got '
                             f'{tuple(shallow.shape)}')
        weights = self.expand_block_weights(self.block_weights(shallow, deep),
                                            shallow.shape[-2:])
        weights = self.weights_tap(weights)
        out = weights * shallow + (1 - weights) * deep
        if return_weights:
            return out, weights
        return out

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, block_size={self.block_size}, '
                f'weight_net={self.weight_net!r}, mid_channels={self.mid_channels}')
