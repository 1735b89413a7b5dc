"""ASFF at one pyramid level: resize every source, per-pixel softmax weights, weighted sum.

Liu, Huang, Wang, "Learning Spatial Fusion for Single-Shot Object Detection"
(arXiv:1911.09516), Eq. (1)-(2):

    y^l_ij = sum_n alpha^{n,l}_ij * x^{n->l}_ij,
    alpha^{n,l}_ij = exp(lambda^{n,l}_ij) / sum_m exp(lambda^{m,l}_ij),

so at every pixel the weights of the sources are in [0, 1] and sum to 1.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..utils.validation import check_choice
from .asff_source import DEFAULT_ACT_CFG, DEFAULT_NORM_CFG, ASFFSource
from .conv_norm_act import ConvNormAct

LEVEL_ORDERS = ('fine_to_coarse', 'coarse_to_fine')


class ASFFLevelFusion(nn.Module):
    """Adaptively spatial feature fusion for one target level of an N-level pyramid.

    For the target level ``l`` and each source ``n`` in ``source_levels``
    (:class:`~fusion_necks.layers.asff_source.ASFFSource`): resize ``x_n`` to
    ``B x C_l x H_l x W_l``; weight logits ``lambda`` (B x S x H_l x W_l) from

    * ``weight_mode='full'`` (official code, default): per-source 1x1 ConvNormAct
      ``C_l -> compress_c``, concatenation (``S * compress_c`` channels), and a plain
      1x1 ``Conv2d(S * compress_c, S)`` with bias (``weight_levels``, no norm/act, as in
      the official code; YOLOX-PAI's norm+act on the logits is not reproduced);
    * ``weight_mode='simple'`` (the explainer; the paper's text): per-source 1x1
      ``Conv2d(C_l, 1)`` with bias, i.e. exactly ``S * C_l + S`` weight parameters;
    * ``weight_mode='uniform'`` (an ablation control, not in the paper): no weight
      branch, ``alpha = 1/S`` everywhere. It keeps every resize and ``expand`` conv, so
      it measures what ASFF's extra convs give without the adaptive weights;

    ``alpha = softmax(lambda, dim=1)`` (per pixel, over the sources), the fused map
    ``y = sum_n alpha[:, n:n+1] * x^{n->l}`` (one scalar per pixel and source,
    broadcast over channels) and the ``expand`` ConvNormAct (k x k, ``C_l -> C_out``;
    the official 3x3 that feeds the YOLOv3 head). The softmax weights
    (``B x S x H_l x W_l``, sources in ``source_levels`` order) pass through the identity
    ``weights_tap``, where the recording tools hook in
    (:func:`~fusion_necks.layers.set_fusion_weight_recording`).

    Args:
        in_channels: channels of every input level, in input order (N entries).
        level: index of the target level in the input list.
        inter_channels: fusion width C_l (default ``in_channels[level]``, as the
            official ``inter_dim``).
        out_channels: channels after ``expand`` (default ``inter_channels``).
        source_levels: input indices fused into this level (default all N); at least 2.
        order: ``'fine_to_coarse'`` (mmdet necks: index 0 has the smallest stride) or
            ``'coarse_to_fine'`` (official ASFF and mmdet's ``YOLOV3Neck``: index 0 is
            stride 32). Consecutive inputs are assumed to differ by a factor 2.
        weight_mode: ``'full'``, ``'simple'`` or ``'uniform'`` (control).
        compress_c: weight-feature channels in ``'full'`` mode (official 16; 8 with rfb).
        finer_resize / coarser_conv / upsample_mode: see :class:`ASFFSource`.
        expand_kernel: kernel of the ``expand`` ConvNormAct; ``None`` or 0 for no
            expand (then ``out_channels`` must equal ``inter_channels``).
        norm_cfg / act_cfg: of every ConvNormAct (not of ``weight_levels``).
        level_names: a name per input level (e.g. ``'P3'``), used for the labels of the
            recorded weight maps (``fusion_source_labels``).

    Shapes: ``forward(inputs)``: N tensors ``B x in_channels[n] x H_n x W_n`` ->
    ``B x out_channels x H_l x W_l`` with ``(H_l, W_l) = inputs[level].shape[-2:]``.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 level: int,
                 inter_channels: Optional[int] = None,
                 out_channels: Optional[int] = None,
                 source_levels: Optional[Sequence[int]] = None,
                 order: str = 'fine_to_coarse',
                 weight_mode: str = 'full',
                 compress_c: int = 16,
                 finer_resize: str = 'official',
                 coarser_conv: str = 'always',
                 upsample_mode: str = 'nearest',
                 expand_kernel: Optional[int] = 3,
                 norm_cfg: Optional[dict] = DEFAULT_NORM_CFG,
                 act_cfg: Optional[dict] = DEFAULT_ACT_CFG,
                 level_names: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        check_choice('order', order, LEVEL_ORDERS)
        in_channels = list(in_channels)
        n = len(in_channels)
        if n < 2:
            raise ValueError(f'in_channels must list at least 2 levels, got {in_channels}')
        if not 0 <= level < n:
            raise ValueError(f'level must be in [0, {n - 1}] for {n} input levels, got {level}')
        source_levels = list(range(n)) if source_levels is None else list(source_levels)
        if len(set(source_levels)) != len(source_levels) or any(
                not isinstance(i, int) or not 0 <= i < n for i in source_levels):
            raise ValueError(f'source_levels must be distinct indices in [0, {n - 1}], '
                             f'got {source_levels}')
        if len(source_levels) < 2:
            raise ValueError(f'level {level} must fuse at least 2 sources, got source_levels='
                             f'{source_levels}')
        level_names = [f'L{i}' for i in range(n)] if level_names is None else list(level_names)
        if len(level_names) != n:
            raise ValueError(f'level_names must have {n} entries (one per input), got '
                             f'{len(level_names)}')
        inter_channels = in_channels[level] if inter_channels is None else inter_channels
        out_channels = inter_channels if out_channels is None else out_channels
        if not expand_kernel and out_channels != inter_channels:
            raise ValueError(f'without an expand conv (expand_kernel={expand_kernel!r}) '
                             f'out_channels ({out_channels}) must equal inter_channels '
                             f'({inter_channels})')

        self.in_channels = in_channels
        self.level = level
        self.order = order
        self.inter_channels = inter_channels
        self.out_channels = out_channels
        self.source_levels = tuple(source_levels)
        self.weight_mode = weight_mode
        self.fusion_source_labels = [level_names[i] for i in source_levels]
        self.fusion_target_label = level_names[level]

        def position(i: int) -> int:   # 0 = finest
            return i if order == 'fine_to_coarse' else n - 1 - i

        self.sources = nn.ModuleDict()
        for i in source_levels:
            self.sources[str(i)] = ASFFSource(
                in_channels[i], inter_channels, position(level) - position(i),
                weight_mode=weight_mode, compress_c=compress_c, finer_resize=finer_resize,
                coarser_conv=coarser_conv, upsample_mode=upsample_mode, norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        num_sources = len(source_levels)
        if weight_mode == 'full':
            self.weight_levels = nn.Conv2d(num_sources * compress_c, num_sources, 1, bias=True)
        else:
            self.weight_levels = None
        if expand_kernel:
            self.expand = ConvNormAct(inter_channels, out_channels, expand_kernel,
                                      norm_cfg=norm_cfg, act_cfg=act_cfg)
        else:
            self.expand = nn.Identity()
        # an identity where the recording tools hook in (layers/fusion_weights.py)
        self.weights_tap = nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The official initialisation (``init_yolo`` in the official ``main.py``).

        Convs: ``kaiming_normal_(a=0.1, mode='fan_in')``, biases 0; norms: weight 1,
        bias 0. (Named ``reset_parameters`` so that mmengine's ``init_weights`` and a
        neck's ``init_cfg`` stay in charge inside OpenMMLab models.)
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode='fan_in')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'ASFFLevelFusion(level={self.level}) expects '
                             f'{len(self.in_channels)} inputs, got {len(inputs)}')
        size = tuple(inputs[self.level].shape[-2:])
        resized, logits = [], []
        for i in self.source_levels:
            if inputs[i].shape[1] != self.in_channels[i]:
                raise ValueError(f'input {i} has {inputs[i].shape[1]} channels, '
                                 f'in_channels[{i}] is {self.in_channels[i]}')
            source = self.sources[str(i)]
            x = source(inputs[i], size)       # B x C_l x H_l x W_l
            resized.append(x)
            if source.weight is not None:
                logits.append(source.weight(x))   # B x c x H_l x W_l (full) / B x 1 x ...
        if logits:
            logits = torch.cat(logits, dim=1)
            if self.weight_levels is not None:
                logits = self.weight_levels(logits)   # B x S x H_l x W_l
            weights = logits.softmax(dim=1)
        else:   # 'uniform'
            x0 = resized[0]
            weights = x0.new_full((x0.shape[0], len(resized), *size), 1.0 / len(resized))
        weights = self.weights_tap(weights)
        # y = sum_n alpha_n * x^{n->l}, accumulated in place (one buffer instead of 2S-1;
        # autograd-safe: mul and addcmul keep their inputs, not their output)
        fused = resized[0] * weights[:, 0:1]
        for j in range(1, len(resized)):
            fused.addcmul_(resized[j], weights[:, j:j + 1])
        return self.expand(fused)

    def extra_repr(self) -> str:
        return (f'level={self.level}, source_levels={self.source_levels}, '
                f'order={self.order!r}, weight_mode={self.weight_mode!r}')
