"""SkipNet decode head (FCN-8s style) with ``add`` or BAFF fusion, for mmseg.

SkipNet: Siam et al., "RTSeg: Real-time semantic segmentation comparative study",
ICIP 2018 (arXiv 1803.02758), the ``fcn8s_mobilenet`` decoder of ``MSiam/TFSegmentation``.
BAFF-SkipNet: Huang et al., Acta Automatica Sinica 47(5):1137-1148, 2021 (see
:class:`fusion_necks.layers.BAFF`).
"""
from functools import partial
from typing import List, Optional, Tuple

import torch
from mmcv.cnn import ConvModule, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch import Tensor, nn

from fusion_necks.layers.baff import BAFF
from fusion_necks.utils.validation import check_choice, check_int

FUSIONS = ('add', 'baff')
FUSION_SPACES = ('score', 'feature')


def check_score_levels(name: str, kwargs: dict, score_space: bool = True) -> None:
    """Validate the ``BaseDecodeHead`` kwargs of a SkipNet-style head (``name`` for the
    messages): one ``multiple_select`` input per level, ``N >= 2`` levels, and in score
    space ``channels == in_channels[-1]`` (``conv_seg`` is the coarsest score layer)."""
    input_transform = kwargs.get('input_transform')
    if input_transform != 'multiple_select':
        raise ValueError(f"{name}: input_transform must be 'multiple_select' (one "
                         f'input per level), got {input_transform!r}')
    in_channels = kwargs.get('in_channels')
    in_index = kwargs.get('in_index', -1)
    if (not isinstance(in_channels, (list, tuple)) or len(in_channels) < 2
            or not all(isinstance(c, int) and c > 0 for c in in_channels)):
        raise ValueError(f'{name}: in_channels must be a sequence of >= 2 positive '
                         'ints, fine to coarse (MobileNetV2 out_indices=(2, 4, 6): '
                         f'(32, 96, 320)), got {in_channels!r}')
    if not isinstance(in_index, (list, tuple)) or len(in_index) != len(in_channels):
        raise ValueError(f'{name}: in_index must be a sequence with one index per '
                         f'in_channels entry ({len(in_channels)}), got {in_index!r}')
    channels = kwargs.get('channels')
    if score_space and channels != in_channels[-1]:
        raise ValueError(
            f"{name}: with score-space fusion the inherited conv_seg is the score "
            'layer of the coarsest level, so channels must equal in_channels[-1] '
            f'({in_channels[-1]}), got channels={channels!r}')


class AddFusion(nn.Module):
    """SkipNet's fusion: ``shallow + deep`` (no parameters)."""

    def forward(self, shallow: Tensor, deep: Tensor) -> Tensor:
        return shallow + deep


def _norm_layer(norm_cfg: dict, num_features: int) -> nn.Module:
    return build_norm_layer(norm_cfg, num_features)[1]


def bilinear_upsample_kernel(kernel_size: int) -> Tensor:
    """The ``k x k`` kernel with which a stride-``k // 2`` transposed conv is a bilinear
    upsampling (FCN's initialisation): outer product of ``1 - |i - centre| / factor``."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt = 1 - (og - centre).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


def init_bilinear_(deconv: nn.ConvTranspose2d) -> None:
    """Set ``deconv`` to a per-channel bilinear upsampling (identity across channels)."""
    in_ch, out_per_group = deconv.weight.shape[:2]
    if deconv.groups == 1 and in_ch != out_per_group:
        raise ValueError('bilinear init needs in_channels == out_channels or groups == channels')
    kernel = bilinear_upsample_kernel(deconv.kernel_size[0]).to(deconv.weight)
    with torch.no_grad():
        deconv.weight.zero_()
        idx = torch.arange(in_ch)
        deconv.weight[idx, idx if deconv.groups == 1 else 0] = kernel
        if deconv.bias is not None:
            deconv.bias.zero_()


class SkipNetHead(BaseDecodeHead):
    """SkipNet's FCN-8s decoder; each skip fusion is ``add`` (SkipNet) or BAFF.

    Inputs are ``N >= 2`` backbone levels ordered fine to coarse at consecutive x2 strides
    (BAFF-SkipNet: mmseg's ``MobileNetV2`` with ``out_indices=(2, 4, 6)``, i.e. 1/8, 1/16,
    1/32 with 32, 96, 320 channels). From the coarsest level down, the running map is
    upsampled x2 by a ``ConvTranspose2d(kernel 4, stride 2, padding 1)`` initialised to
    bilinear interpolation, matched to the finer map, and fused with it::

        y_{N-1} = m_{N-1};  y_i = fuse_i(S=m_i, D=up_i(y_{i+1})),  i = N-2 .. 0

    and the logits are at the finest input stride (1/8); mmseg upsamples them bilinearly
    to the label size in ``loss_by_feat``/``predict_by_feat`` (this replaces SkipNet's last
    x8 transposed conv).

    ``fusion_space='score'`` (SkipNet's choice and the default): ``m_i`` are class scores,
    a 1x1 conv per level; the coarsest one is the inherited ``conv_seg`` (so ``channels``
    must equal ``in_channels[-1]``), BAFF fuses ``num_classes``-channel maps and the fused
    finest map is returned as logits. The transposed convs are ``K x K`` (full, as SkipNet).

    ``fusion_space='feature'``: ``m_i`` are features, a 1x1 ``ConvModule`` (``conv_cfg``,
    ``norm_cfg``, ``act_cfg``) per level to ``channels``; the transposed convs are
    depthwise (one bilinear kernel per channel, to stay light at the 1/8 stride), BAFF fuses
    ``channels``-channel maps and ``cls_seg`` classifies the fused finest map.

    Size matching: mmseg's MobileNetV2 rounds up at each stride-2 step, so ``up_i`` can be
    one row/column larger than ``m_i`` (e.g. 17 -> 34 vs 33 for a 513-pixel side); it is
    cropped at the bottom/right, as FCN crops. A map one pixel smaller (backbones that round
    down) is resized bilinearly. Larger differences mean the inputs are not at consecutive
    x2 strides (e.g. the dilated ``mobilenet-v2-d8`` backbone) and raise a ``ValueError``.

    Dropout (``dropout_ratio``) is applied before every score layer in score space (SkipNet
    has none: our configs set 0) and before ``conv_seg`` in feature space.

    Args:
        fusion (str): ``'add'`` (SkipNet) or ``'baff'`` (BAFF-SkipNet). Default: ``'add'``.
        fusion_space (str): ``'score'`` (default) or ``'feature'``, see above.
        baff_cfg (dict, optional): keyword arguments of :class:`~fusion_necks.layers.BAFF`
            (``block_size``, ``weight_net``, ``mid_channels``, ``kernel_size``) plus
            ``norm_cfg``, the mmcv norm config of BAFF's weight sub-network (default: the
            head's ``norm_cfg``, or ``dict(type='BN')`` when that is None; ``None`` for no
            normalisation). Its ``channels`` follow from ``fusion_space``. Only with
            ``fusion='baff'``.
        upsample_kernel_size (int): kernel of the x2 transposed convs (stride 2, padding
            ``(k - 2) // 2``), even. Default: 4 (SkipNet).
        **kwargs: :class:`mmseg.models.decode_heads.decode_head.BaseDecodeHead` arguments;
            ``input_transform`` is ``'multiple_select'`` (the default here and the only
            accepted value), ``in_channels``/``in_index`` are sequences of equal length.
    """

    def __init__(self,
                 fusion: str = 'add',
                 fusion_space: str = 'score',
                 baff_cfg: Optional[dict] = None,
                 upsample_kernel_size: int = 4,
                 **kwargs) -> None:
        kwargs.setdefault('input_transform', 'multiple_select')
        check_choice('fusion', fusion, FUSIONS, prefix='SkipNetHead: ')
        check_choice('fusion_space', fusion_space, FUSION_SPACES, prefix='SkipNetHead: ')
        check_score_levels('SkipNetHead', kwargs, score_space=fusion_space == 'score')
        if baff_cfg is not None and fusion != 'baff':
            raise ValueError(f"SkipNetHead: baff_cfg is only used with fusion='baff', got "
                             f'fusion={fusion!r}')
        baff_cfg = dict(baff_cfg or {})
        for key in ('channels', 'norm_layer'):
            if key in baff_cfg:
                raise ValueError(
                    f'SkipNetHead: baff_cfg must not set {key}: BAFF fuses num_classes score '
                    'maps (score space) or `channels` features, normalised per norm_cfg')
        check_int('upsample_kernel_size', upsample_kernel_size, 2, prefix='SkipNetHead: ')
        if upsample_kernel_size % 2:
            raise ValueError('SkipNetHead: upsample_kernel_size must be an even int >= 2, '
                             f'got {upsample_kernel_size!r}')
        super().__init__(**kwargs)
        self.fusion = fusion
        self.fusion_space = fusion_space
        num_levels = len(self.in_channels)

        if fusion_space == 'score':
            width = self.out_channels
            # Score layers of the finer levels; the coarsest one is self.conv_seg.
            self.score_convs = nn.ModuleList(
                nn.Conv2d(c, width, 1) for c in self.in_channels[:-1])
            groups = 1
        else:
            width = self.channels
            self.lateral_convs = nn.ModuleList(
                ConvModule(c, width, 1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                           act_cfg=self.act_cfg) for c in self.in_channels)
            groups = width
        self.fusion_channels = width
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(width, width, upsample_kernel_size, stride=2,
                               padding=(upsample_kernel_size - 2) // 2, groups=groups,
                               bias=False) for _ in range(num_levels - 1))
        if fusion == 'add':
            self.fusions = nn.ModuleList(AddFusion() for _ in range(num_levels - 1))
        else:
            norm_cfg = baff_cfg.pop('norm_cfg', self.norm_cfg or dict(type='BN'))
            norm_layer = None if norm_cfg is None else partial(_norm_layer, norm_cfg)
            self.fusions = nn.ModuleList(
                BAFF(width, norm_layer=norm_layer, **baff_cfg) for _ in range(num_levels - 1))
            for i, baff in enumerate(self.fusions):  # names the weight-map PNGs
                baff.fusion_target_label = f'level{i}'
        for deconv in self.upsamplers:
            init_bilinear_(deconv)

    def init_weights(self) -> None:
        """mmseg's init (``conv_seg`` ~ N(0, 0.01)), then bilinear transposed convs."""
        super().init_weights()
        for deconv in self.upsamplers:
            init_bilinear_(deconv)

    def _level_maps(self, inputs: List[Tensor]) -> List[Tensor]:
        if self.fusion_space == 'feature':
            return [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        maps = []
        for conv, x in zip(self.score_convs, inputs[:-1]):
            maps.append(conv(self.dropout(x) if self.dropout is not None else x))
        maps.append(self.cls_seg(inputs[-1]))
        return maps

    @staticmethod
    def _match_size(up: Tensor, ref: Tensor) -> Tensor:
        dh, dw = up.shape[-2] - ref.shape[-2], up.shape[-1] - ref.shape[-1]
        if dh == 0 and dw == 0:
            return up
        if dh in (0, 1) and dw in (0, 1):
            return up[..., :ref.shape[-2], :ref.shape[-1]]
        if abs(dh) <= 1 and abs(dw) <= 1:
            return resize(up, size=ref.shape[-2:], mode='bilinear', align_corners=False)
        raise ValueError(
            'SkipNetHead: consecutive inputs must be at a x2 stride ratio (e.g. MobileNetV2 '
            'with its default strides and out_indices=(2, 4, 6)); the upsampled coarser map '
            f'is {tuple(up.shape[-2:])} for a finer map of {tuple(ref.shape[-2:])}')

    def forward(self, inputs: Tuple[Tensor]) -> Tensor:
        """Backbone levels -> logits ``B x num_classes x H/8 x W/8`` (finest stride)."""
        maps = self._level_maps(self._transform_inputs(inputs))
        y = maps[-1]
        for i in range(len(maps) - 2, -1, -1):
            up = self._match_size(self.upsamplers[i](y), maps[i])
            y = self.fusions[i](maps[i], up)
        if self.fusion_space == 'feature':
            y = self.cls_seg(y)
        return y
