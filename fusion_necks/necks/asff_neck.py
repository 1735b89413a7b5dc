"""ASFF neck for MMDetection / MMSegmentation (registered as ``'ASFFNeck'`` in both).

Liu, Huang, Wang, "Learning Spatial Fusion for Single-Shot Object Detection",
arXiv:1911.09516. The fusion itself is plain PyTorch
(:class:`fusion_necks.layers.ASFFLevelFusion`); this class builds one per fused
level, validates the configuration and follows the OpenMMLab neck contract
(tuple of levels in, same type out), so it can follow any neck::

    neck=[dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256,
               start_level=1, add_extra_convs='on_input', num_outs=5),
          dict(type='ASFFNeck', in_channels=256, num_levels=5)]

(mmengine builds a list of neck configs into an ``nn.Sequential``.) The keyword defaults
are the paper's generic neck; the other settings are config files:
``configs/_base_/necks/asff.py`` (after a 5-level FPN), ``asff_yolov3.py`` (after mmdet's
``YOLOV3Neck``) and ``asff_official.py`` (the official YOLOv3-ASFF modules, whose
weights :func:`fusion_necks.necks.asff_official_weights.convert_official_asff` maps).
"""
import copy
from typing import Dict, List, Optional, Sequence, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from fusion_necks.layers.asff_fusion import LEVEL_ORDERS, ASFFLevelFusion
from fusion_necks.layers.fusion_weights import fusion_weight_maps
from fusion_necks.layers.asff_source import (COARSER_CONV_MODES, FINER_RESIZE_MODES,
                                             UPSAMPLE_MODES, WEIGHT_MODES, check_choice)

DEFAULT_INIT_CFG = [
    # the official init (`init_yolo` in GOATmessi8/ASFF main.py)
    dict(type='Kaiming', layer='Conv2d', a=0.1, mode='fan_in', nonlinearity='leaky_relu',
         distribution='normal', bias=0),
    dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1, bias=0),
]


def _per_level(name: str, value, n: int, what: str) -> List[int]:
    """Broadcast an int to ``n`` levels or check a list has ``n`` entries."""
    if isinstance(value, int):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f'{name} has {len(value)} entries ({value}) but there are {n} '
                         f'{what}; give one per level or a single int')
    if any(not isinstance(v, int) or v <= 0 for v in value):
        raise ValueError(f'{name} must hold positive ints, got {value}')
    return value


class ASFFNeck(BaseModule):
    """Adaptively spatial feature fusion over N >= 2 pyramid levels (any channels).

    Every fused level ``l`` gets an :class:`~fusion_necks.layers.ASFFLevelFusion`:
    all (or the allowed) fused levels are resized to level ``l`` (finer: max-pool(s)
    + 3x3 stride-2 conv; coarser: 1x1 conv + interpolation to the exact size),
    per-source 1x1 compressions to ``compress_c`` channels are concatenated and
    mapped by a plain 1x1 conv with bias to one logit per source, a softmax over the
    sources gives per-pixel weights that sum to 1, the weighted sum is taken and the
    ``expand`` conv (3x3 by default) maps it to ``out_channels``.

    Paper vs official code (defaults follow the paper; the other reading is an option):

    * coarser sources: the paper compresses channels with a 1x1 conv before
      upsampling (``coarser_conv='always'``, default); the official code skips it when
      the widths already match (``'auto'``, used by ``configs/_base_/necks/asff_official.py``
      and ``asff_yolov3.py``).
    * weight prediction: the official code (and the issue) compresses each source to
      ``compress_c`` channels first (``weight_mode='full'``, default); the paper's
      wording "1x1 convolution layers" maps each source straight to its logit
      (``'simple'``, ``n*C + n`` parameters). ``'uniform'`` is a control for
      ablations: fixed weights ``1/n``, every resize and expand conv kept.
    * the official code upsamples with a fixed ``scale_factor``; we always interpolate
      to the exact target size, so padded odd sizes (P7 7x11 vs P6 13x21) work.

    Args:
        in_channels: an int (uniform, needs ``num_levels``) or one int per input level,
            in input order.
        out_channels: int or per level (default ``in_channels``). Levels that are not
            fused pass through unchanged, so there it must equal ``in_channels``.
        num_levels: N; required when ``in_channels`` is an int, checked otherwise.
        fuse_levels: input indices to fuse (default all). The others are returned
            unchanged and do not feed the fusion (e.g. ``[0, 1, 2]`` after a 5-level
            RetinaNet FPN: ASFF over P3-P5, P6/P7 passed through).
        fuse_range: optional limit: level ``l`` only fuses fused levels ``n`` with
            ``|n - l| <= fuse_range`` (the cheap "neighbours only" variant).
        source_levels: optional explicit limit, one list of input indices per entry of
            ``fuse_levels`` (overrides ``fuse_range``).
        input_order: ``'fine_to_coarse'`` (mmdet FPN, default) or ``'coarse_to_fine'``
            (mmdet ``YOLOV3Neck`` and the official ASFF). Outputs keep the input order.
        inter_channels: fusion width per fused level (default the level's
            ``in_channels``, the official ``inter_dim``); an int or one per input level
            (entries of pass-through levels are ignored). Smaller is cheaper.
        weight_mode: ``'full'`` (default), ``'simple'`` or ``'uniform'`` (control), see above.
        compress_c: channels per source in ``'full'`` mode (official 16; 8 with rfb;
            YOLOX-PAI 2).
        finer_resize: ``'official'`` (max-pools + one stride-2 conv), ``'pool'`` (one
            max-pool + one stride-2 conv) or ``'conv'`` (chained stride-2 convs); see
            :class:`~fusion_necks.layers.ASFFSource`.
        coarser_conv: ``'always'`` (paper) or ``'auto'`` (official).
        upsample_mode: interpolation mode for coarser sources (official ``'nearest'``).
        expand_kernel: kernel of the expand conv; ``None``/0 for none (then
            ``out_channels`` must equal ``inter_channels``).
        norm_cfg: norm of every conv except the logit conv (official BN; GN(32) or
            SyncBN recommended for small per-GPU batches).
        act_cfg: activation (official ``LeakyReLU(0.1)``).
        level_names: names of the input levels for the weight-map labels (e.g.
            ``['P3', 'P4', 'P5', 'P6', 'P7']``; default ``L0..L{N-1}``).
        init_cfg: default is the official init (Kaiming normal, a=0.1, fan_in);
            ``None`` for none.

    Configurations as config files (``_base_`` them and change single keys with
    ``dict(_base_.asff_neck, key=value)``): ``configs/_base_/necks/asff.py`` (after a
    5-level FPN: GN, compress 16), ``asff_yolov3.py`` (after mmdet's ``YOLOV3Neck``:
    official level order and ``coarser_conv='auto'``, no expand conv) and
    ``asff_official.py``: the official YOLOv3-ASFF modules ``asff_official``
    (channels 512/256/256 in, 1024/512/256 out, coarse-to-fine, ``coarser_conv='auto'``,
    compress 16), ``asff_official_rfb`` (compress 8) and ``asff_official_mobile``
    (512/256/128 in, ReLU6), whose parameter names map onto ours with
    :func:`fusion_necks.necks.asff_official_weights.convert_official_asff`.

    Shapes: ``forward(inputs)`` with ``inputs[i]``: ``B x in_channels[i] x H_i x W_i``
    returns the same container type with ``B x out_channels[i] x H_i x W_i``.

    The last softmax weights are available without changing the return type:
    ``fusion_necks.layers.set_fusion_weight_recording(neck)`` then
    :meth:`fusion_weight_maps` (or ``iter_fusion_weight_maps``) after a forward.
    """

    def __init__(self,
                 in_channels: Union[int, Sequence[int], None] = None,
                 out_channels: Union[int, Sequence[int], None] = None,
                 num_levels: Optional[int] = None,
                 fuse_levels: Optional[Sequence[int]] = None,
                 fuse_range: Optional[int] = None,
                 source_levels: Optional[Sequence[Sequence[int]]] = None,
                 input_order: str = 'fine_to_coarse',
                 inter_channels: Union[int, Sequence[int], None] = None,
                 weight_mode: str = 'full',
                 compress_c: int = 16,
                 finer_resize: str = 'official',
                 coarser_conv: str = 'always',
                 upsample_mode: str = 'nearest',
                 expand_kernel: Optional[int] = 3,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='LeakyReLU', negative_slope=0.1),
                 level_names: Optional[Sequence[str]] = None,
                 init_cfg: Union[dict, List[dict], None] = DEFAULT_INIT_CFG) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        # the defaults are shared between instances: every layer gets its own copy
        norm_cfg, act_cfg = copy.deepcopy(norm_cfg), copy.deepcopy(act_cfg)

        check_choice('input_order', input_order, LEVEL_ORDERS)
        check_choice('weight_mode', weight_mode, WEIGHT_MODES)
        check_choice('finer_resize', finer_resize, FINER_RESIZE_MODES)
        check_choice('coarser_conv', coarser_conv, COARSER_CONV_MODES)
        check_choice('upsample_mode', upsample_mode, UPSAMPLE_MODES)

        # ---- number of levels and per-level channels
        in_ch, n = in_channels, num_levels
        if in_ch is None:
            raise ValueError('in_channels is required (an int with num_levels, or a list)')
        if isinstance(in_ch, int):
            if n is None:
                raise ValueError(f'in_channels={in_ch} is a single int, so num_levels is '
                                 'required (the number of pyramid levels the neck receives)')
        elif n is None:
            n = len(in_ch)
        if not isinstance(n, int) or n < 2:
            raise ValueError(f'num_levels must be an int >= 2, got {n!r}')
        self.num_levels = n
        self.in_channels = _per_level('in_channels', in_ch, n, 'levels (num_levels)')
        self.out_channels = list(self.in_channels) if out_channels is None else _per_level(
            'out_channels', out_channels, n, 'input levels')
        self.input_order = input_order

        # ---- which levels are fused, and from which sources
        fuse = list(range(n)) if fuse_levels is None else list(fuse_levels)
        if (len(fuse) < 2 or len(set(fuse)) != len(fuse)
                or any(not isinstance(i, int) or not 0 <= i < n for i in fuse)):
            raise ValueError(f'fuse_levels must be at least 2 distinct indices in [0, {n - 1}], '
                             f'got {fuse_levels}')
        self.fuse_levels = sorted(fuse)
        for i in range(n):
            if i not in self.fuse_levels and self.out_channels[i] != self.in_channels[i]:
                raise ValueError(f'level {i} is not in fuse_levels and passes through, so '
                                 f'out_channels[{i}] ({self.out_channels[i]}) must equal '
                                 f'in_channels[{i}] ({self.in_channels[i]})')
        if source_levels is not None:
            source_levels = [list(s) for s in source_levels]
            if len(source_levels) != len(self.fuse_levels):
                raise ValueError(f'source_levels needs one list per fused level '
                                 f'({len(self.fuse_levels)}), got {len(source_levels)}')
            for lvl, srcs in zip(self.fuse_levels, source_levels):
                bad = [s for s in srcs if s not in self.fuse_levels]
                if bad:
                    raise ValueError(f'source_levels for level {lvl} lists {bad}, which are '
                                     f'not in fuse_levels {self.fuse_levels}')
        elif fuse_range is not None:
            if not isinstance(fuse_range, int) or fuse_range < 1:
                raise ValueError(f'fuse_range must be an int >= 1, got {fuse_range!r}')
            source_levels = [[s for s in self.fuse_levels if abs(s - lvl) <= fuse_range]
                             for lvl in self.fuse_levels]
        else:
            source_levels = [list(self.fuse_levels) for _ in self.fuse_levels]
        self.source_levels = {lvl: tuple(s) for lvl, s in zip(self.fuse_levels, source_levels)}

        inter = (list(self.in_channels) if inter_channels is None else
                 _per_level('inter_channels', inter_channels, n, 'input levels'))
        self.inter_channels = inter
        if level_names is not None and len(level_names) != n:
            raise ValueError(f'level_names must have {n} entries, got {list(level_names)}')
        self.level_names = (list(level_names) if level_names is not None else
                            [f'L{i}' for i in range(n)])

        self.fusions = nn.ModuleDict()
        for lvl in self.fuse_levels:
            self.fusions[str(lvl)] = ASFFLevelFusion(
                self.in_channels, lvl, inter_channels=inter[lvl],
                out_channels=self.out_channels[lvl], source_levels=self.source_levels[lvl],
                order=self.input_order, weight_mode=weight_mode, compress_c=compress_c,
                finer_resize=finer_resize, coarser_conv=coarser_conv,
                upsample_mode=upsample_mode, expand_kernel=expand_kernel, norm_cfg=norm_cfg,
                act_cfg=act_cfg, level_names=self.level_names)

    def forward(self, inputs: Sequence[Tensor]) -> Sequence[Tensor]:
        if not isinstance(inputs, (tuple, list)):
            raise TypeError(f'ASFFNeck expects a tuple/list of {self.num_levels} feature maps, '
                            f'got {type(inputs).__name__}')
        if len(inputs) != self.num_levels:
            raise ValueError(f'ASFFNeck was built for {self.num_levels} levels '
                             f'(num_levels/in_channels), got {len(inputs)} inputs')
        outs = list(inputs)
        for lvl in self.fuse_levels:
            outs[lvl] = self.fusions[str(lvl)](inputs)
        return type(inputs)(outs) if isinstance(inputs, tuple) else outs

    def fusion_weight_maps(self) -> Dict[str, Tensor]:
        """``{level name: B x S x H x W softmax weights}`` of the last forward.

        Empty unless recording was switched on with
        ``fusion_necks.layers.set_fusion_weight_recording``.
        """
        out = {}
        for lvl in self.fuse_levels:
            maps = fusion_weight_maps(self.fusions[str(lvl)])
            if 'weights' in maps:
                out[self.level_names[lvl]] = maps['weights']
        return out
