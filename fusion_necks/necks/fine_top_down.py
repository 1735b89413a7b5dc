"""FINE in the top-down path of an FPN, shared by the mmdet and mmseg ``FINEFPN``.

Framework-agnostic (no OpenMMLab imports at module level; its log lines go through
mmengine's ``print_log`` where mmengine is installed): :class:`FINETopDownMixin` is
combined with mmdet's or mmseg's own ``FPN`` in ``fine_fpn_mmdet.py`` /
``fine_fpn_mmseg.py``.

Defaults for every FPN the framework builds (any ``out_channels``, any number of
top-down steps): :func:`default_fine_kernel_sizes` picks the kernels from the number of
steps, :func:`~fusion_necks.layers.fine.default_num_heads` the heads from ``C``.
"""
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.fine import DEFAULT_HEAD_DIM, FINE, default_heads_message, default_num_heads

# The paper's default: FINE at the first two top-down steps (counted from the coarsest
# level) with k = 1 and k = 2, i.e. at low strides 16 and 8 of a stride-4..32 pyramid.
DEFAULT_FINE_KERNEL_SIZES = (1, 2)


def default_fine_kernel_sizes(num_steps: int) -> Tuple[int, ...]:
    """``fine_kernel_sizes`` when the user leaves it unset, for ``num_steps`` top-down steps.

    The paper's ``(1, 2)`` (Sec. 5.3.2: ``k = 1`` at the coarsest fusion step, ``k = 2`` at
    the next), cut to the steps the FPN has:

    - 2 or more steps: ``(1, 2)``; the finer steps keep the plain addition (the paper puts
      FINE at two stages; e.g. the stride-4 step of a stride-4..32 pyramid);
    - 1 step: ``(1,)``, the paper's entry for the coarsest step, which this step is (its
      ``F_high`` is the top lateral itself);
    - 0 steps (one level, or ``start_level`` at the top): ``()``, FINEFPN is the FPN.

    The steps are counted from the coarsest, not by stride: the neck does not know the
    strides of its inputs.
    """
    return DEFAULT_FINE_KERNEL_SIZES[:max(num_steps, 0)]


def _log(msg: str, level: int = logging.WARNING) -> None:
    """To mmengine's current logger (the run's log file) where mmengine is installed."""
    try:
        from mmengine.logging import print_log
    except ImportError:  # pragma: no cover - the mixin is used with mm* FPNs
        logging.getLogger(__name__).log(level, msg)
        return
    print_log(msg, logger='current', level=level)


class FINETopDownMixin:
    """Puts FINE in front of the top-down fusion of an FPN (Eq. 3 of the FINE paper).

    ``F_fused = f(FINE(F_low, F_high), Up(F_high))``: at a top-down step the low lateral
    is replaced by its FINE-aligned version before the FPN adds the upsampled high map.
    ``F_high`` is the already merged map of the level above (what the FPN upsamples), as
    in the paper ("F_fused subsequently serves as the high-level input for the next
    fusion stage") and the public code.

    Implementation: one plain top-down loop, from the coarsest level down,
    ``low = FINE(lat[i-1], lat[i]) if FINE at this step else lat[i-1]``, then
    ``lat[i-1] = low + Up(lat[i])`` with the framework's ``Up`` (:meth:`_upsample_like`:
    ``upsample_cfg`` as mmdet's ``F.interpolate`` or mmseg's ``resize`` uses it), followed
    by the FPN's output convs and extra levels (:meth:`_outputs`, the step that mmdet
    3.3.0's and mmseg 1.2.2's ``FPN.forward`` share line for line, every
    ``add_extra_convs`` variant). With FINE off at every step, ``forward`` *is*
    ``FPN.forward``; ``tests/test_necks/test_fine_fpn.py`` checks the loop against
    ``FPN.forward`` bit for bit for every ``add_extra_convs``/``upsample_cfg`` variant
    with FINE on and ``M = 0``, and the Eq. 3 wiring with live FINE by hand.

    Args (besides those of the framework's ``FPN``, all passed through unchanged):
        fine_kernel_sizes (Sequence[int | None], optional): ``k`` of each top-down fusion
            step, ordered from the coarsest step (low level ``end - 2`` with high level
            ``end - 1``) downwards; ``None`` or ``0`` keeps the plain addition at that
            step, and steps beyond the sequence keep it too. A sequence longer than the
            FPN's number of steps raises. An empty sequence switches FINE off everywhere
            (``forward`` is then exactly ``FPN.forward``). Default ``None``:
            :func:`default_fine_kernel_sizes`, i.e. ``(1, 2)``, the paper's choice (Sec.
            5.3.2), wherever the FPN has at least two steps: FINE with ``k = 1`` where the
            low level has stride 16 and ``k = 2`` where it has stride 8 for the usual
            stride-4..32 ResNet pyramid, so both steps attend on the stride-32 token grid,
            and **plain addition at the stride-4 step** of two-stage detectors and
            Semantic FPN (the paper places FINE at two stages, and its parameter/FLOP
            budget of about +1 GFLOPs matches two); ``(1,)`` with one step, ``()`` with
            none. Set e.g. ``(1, 2, 4)`` to add FINE at stride 4 too.
        fine_cfg (dict, optional): keyword arguments of every :class:`FINE` block other
            than ``channels`` and ``kernel_size`` (``ratio``, ``num_heads``/``head_dim``,
            ``attention``, ``pooling``, ``modulation``, ``upsample_mode``, ``bias``,
            ``window_size``, ``num_areas``, ``scale_ratio``, ``zeros_init``). Default: the
            paper's (``r = 2``, ``d = 16``, AATS with average pooling, nearest ``Up``,
            residual modulation). With neither ``num_heads`` nor ``head_dim`` set and
            ``out_channels`` not divisible by 16, the heads follow
            :func:`~fusion_necks.layers.fine.default_num_heads` (the divisor of ``C``
            nearest to ``C / 16``, ties to more heads), logged once per neck as a warning;
            an explicit value that does not fit ``C`` raises.

    Attributes:
        fine_layers (nn.ModuleDict): the FINE blocks, keyed ``'level<i>'`` by the input
            index ``i`` of their low level (``'level2'`` is the stride-16 step of a
            ResNet pyramid).
    """

    def __init__(self, *args,
                 fine_kernel_sizes: Optional[Sequence[Optional[int]]] = None,
                 fine_cfg: Optional[Dict[str, Any]] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        num_steps = max(self.backbone_end_level - self.start_level - 1, 0)
        if fine_kernel_sizes is None:
            fine_kernel_sizes = default_fine_kernel_sizes(num_steps)
            if num_steps < len(DEFAULT_FINE_KERNEL_SIZES):
                _log(f'{type(self).__name__}: {num_steps} top-down fusion step(s), so the '
                     f'default fine_kernel_sizes is {fine_kernel_sizes} (the paper\'s '
                     f'{DEFAULT_FINE_KERNEL_SIZES}, coarsest step first, cut to the steps)',
                     logging.INFO)
        elif isinstance(fine_kernel_sizes, (str, bytes)) or not isinstance(
                fine_kernel_sizes, Sequence):
            raise TypeError(f'fine_kernel_sizes must be a sequence of int or None, got '
                            f'{fine_kernel_sizes!r}')
        elif len(fine_kernel_sizes) > num_steps:
            raise ValueError(
                f'fine_kernel_sizes has {len(fine_kernel_sizes)} entries but this FPN has '
                f'{num_steps} top-down fusion step(s) (levels {self.start_level}..'
                f'{self.backbone_end_level - 1}); got {tuple(fine_kernel_sizes)}, expected at '
                f'most {num_steps} entr{"y" if num_steps == 1 else "ies"} (one k per step, '
                f'coarsest first), or leave it unset for the default '
                f'{default_fine_kernel_sizes(num_steps)}')
        fine_cfg = dict(fine_cfg or {})
        for key in ('channels', 'kernel_size', 'high_channels'):
            if key in fine_cfg:
                raise ValueError(f'fine_cfg must not set {key!r}: the neck sets it '
                                 f'(use fine_kernel_sizes for k)')
        self.fine_kernel_sizes = tuple(fine_kernel_sizes)
        self.fine_cfg = fine_cfg
        block_cfg = dict(fine_cfg)
        if fine_cfg.get('num_heads') is None and fine_cfg.get('head_dim') is None:
            block_cfg.pop('head_dim', None)
            block_cfg['num_heads'] = default_num_heads(self.out_channels)
            if self.out_channels % DEFAULT_HEAD_DIM and any(self.fine_kernel_sizes):
                _log(f'{type(self).__name__}: ' + default_heads_message(
                    self.out_channels, block_cfg['num_heads']))
        self.fine_layers = nn.ModuleDict()
        for step, k in enumerate(self.fine_kernel_sizes):
            if k is None or k == 0:
                continue
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ValueError(f'fine_kernel_sizes[{step}] must be an int >= 1, 0 or None, '
                                 f'got {k!r}')
            low_level = self.backbone_end_level - 2 - step
            try:
                layer = FINE(self.out_channels, kernel_size=k, **block_cfg)
            except ValueError as e:
                raise ValueError(f'fine_cfg (FINE at input level {low_level}, channels = '
                                 f'out_channels = {self.out_channels}): {e}') from e
            self.fine_layers[f'level{low_level}'] = layer

    def _upsample_like(self, x: Tensor, ref: Tensor) -> Tensor:
        """The FPN's ``Up`` of its top-down line (framework-specific)."""
        raise NotImplementedError

    def _outputs(self, inputs: Tuple[Tensor, ...], laterals: List[Tensor]) -> tuple:
        """The FPN's output convs and extra levels on the merged laterals."""
        n = len(laterals)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(n)]
        if self.num_outs > n:
            if not self.add_extra_convs:  # max pool on the top output (Faster R-CNN)
                for _ in range(self.num_outs - n):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:  # extra convs (RetinaNet)
                sources = {'on_input': lambda: inputs[self.backbone_end_level - 1],
                           'on_lateral': lambda: laterals[-1],
                           'on_output': lambda: outs[-1]}
                if self.add_extra_convs not in sources:
                    raise NotImplementedError(self.add_extra_convs)
                outs.append(self.fpn_convs[n](sources[self.add_extra_convs]()))
                for i in range(n + 1, self.num_outs):
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](x))
        return tuple(outs)

    def forward(self, inputs: Tuple[Tensor, ...]) -> tuple:
        if len(self.fine_layers) == 0:
            return super().forward(inputs)
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'{type(self).__name__} expects {len(self.in_channels)} input '
                             f'levels, got {len(inputs)}')
        lat = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(lat) - 1, 0, -1):
            key = f'level{i - 1 + self.start_level}'  # input index of the low level
            low = self.fine_layers[key](lat[i - 1], lat[i]) if key in self.fine_layers \
                else lat[i - 1]
            lat[i - 1] = low + self._upsample_like(lat[i], low)
        return self._outputs(inputs, lat)
