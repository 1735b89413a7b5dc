"""``PointMSDeformAttnPixelDecoder``: the point-based pixel decoder with mmdet's interface.

Registered as ``'PointMSDeformAttnPixelDecoder'`` in mmdet's and mmseg's ``MODELS`` (by
``fusion_necks.registry``), so a Mask2Former config switches with one key; it takes the
arguments of mmdet's ``MSDeformAttnPixelDecoder`` (``in_channels``, ``strides``,
``feat_channels``, ``out_channels``, ``num_outs``, ``norm_cfg``, ``act_cfg``, ``encoder``
with ``layer_cfg.self_attn_cfg.num_levels`` for the head's assertion,
``positional_encoding``, ``init_cfg``) plus the point-specific ones. An mmengine
``BaseModule`` (``init_cfg``, ``init_weights``) around the plain-PyTorch
:class:`~.point_pixel_decoder.PointPixelDecoder`; only ``fusion_necks.registry`` imports
this module, so ``fusion_necks.layers.point`` itself stays free of OpenMMLab.
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor

from ..layers.conv_norm_act import get_act_layer
from ..ops.point_features import PointFeatures
from ..layers.point.point_pixel_decoder import PointPixelDecoder

_NORMS = ('LN', 'LayerNorm')
#: MultiScaleDeformableAttention / FFN keys that have no meaning without mmcv's CUDA kernel
_IGNORED_ATTN_KEYS = ('im2col_step', 'batch_first', 'norm_cfg', 'init_cfg', 'value_proj_ratio')


# BaseModule after the plain decoder in the MRO: PointPixelDecoder.__init__ calls
# super().__init__() without arguments, which then lands in BaseModule.__init__
# (init_cfg=None, is_init False) and nn.Module.__init__ exactly once; the module tree,
# hence the state-dict keys, is the plain decoder's.
class PointMSDeformAttnPixelDecoder(PointPixelDecoder, BaseModule):
    """Point-based Mask2Former pixel decoder of AutoFocusFormer (CVPR 2023, Sec. 4.1).

    See :class:`~.point_pixel_decoder.PointPixelDecoder` for the architecture, the inputs
    (AutoFocusFormer :class:`PointFeatures` or dense maps of any backbone) and the point
    arguments. Config keys taken from mmdet's ``MSDeformAttnPixelDecoder``:

    Args:
        in_channels, strides, feat_channels, out_channels, num_outs: as mmdet's.
        norm_cfg: must be LayerNorm (``dict(type='LN')``): the point decoder replaces
            GroupNorm by LayerNorm (official code); GN raises.
        act_cfg: activation after the FPN PointConv (default ``dict(type='ReLU')``; any
            activation of :data:`~fusion_necks.layers.conv_norm_act.ACT_LAYERS`).
        encoder: mmdet's ``DeformableDetrTransformerEncoder`` dict: ``num_layers`` (6) and
            ``layer_cfg`` with ``self_attn_cfg`` (``embed_dims`` = ``feat_channels``,
            ``num_heads`` 8, ``num_levels`` 3, ``num_points`` 4, ``dropout``) and
            ``ffn_cfg`` (``feedforward_channels`` 1024, ``num_fcs`` 2, ``ffn_drop``,
            ``act_cfg``, default ReLU, in place). mmcv-kernel keys (``im2col_step``,
            ``batch_first``) are accepted and ignored.
        positional_encoding: ``num_feats``, ``temperature``, ``normalize``, ``scale``,
            ``eps``, ``offset`` as mmdet's ``SinePositionalEncoding``, plus
            ``normalize_by`` (``'canvas'`` or ``'tensor_max'``, see
            :mod:`.point_position_encoding`).
        learnable_shepard_power: the core's ``learnable_power``.
        init_cfg: OpenMMLab init config, applied by ``init_weights`` after the default
            (mmdet-style) initialisation; ``Pretrained`` entries last, as ``BaseModule``
            does.
        **kwargs: the point arguments of :class:`PointPixelDecoder` (``shepard_power``,
            ``upsample_power``, ``neighbour_search``, ``offset_units``, ...).

    ``forward(feats)`` honours the pixel-decoder contract of mmdet/mmseg's
    ``Mask2FormerHead``: ``(mask_feature B x out_channels x h x w, [num_outs dense
    B x feat_channels x H_l x W_l maps, low to high resolution])``.
    ``forward_points(feats)`` returns the multi-scale outputs as :class:`PointFeatures`,
    which :class:`~.point_mask2former_head.PointMask2FormerHead` cross-attends to.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None,
                 encoder: Optional[dict] = None,
                 positional_encoding: Optional[dict] = None,
                 learnable_shepard_power: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        norm_cfg = norm_cfg if norm_cfg is not None else dict(type='LN')
        if norm_cfg.get('type') not in _NORMS:
            raise ValueError(f"norm_cfg must be dict(type='LN') (the point decoder uses "
                             f"LayerNorm on tokens), got {norm_cfg}")
        encoder = copy.deepcopy(dict(encoder)) if encoder is not None else {}
        layer_cfg = dict(encoder.get('layer_cfg', {}))
        attn = dict(layer_cfg.get('self_attn_cfg', {}))
        ffn = dict(layer_cfg.get('ffn_cfg', {}))
        for key in ('embed_dims', ):
            for name, d in (('self_attn_cfg', attn), ('ffn_cfg', ffn)):
                if d.get(key, feat_channels) != feat_channels:
                    raise ValueError(f'encoder.layer_cfg.{name}.{key} must equal feat_channels '
                                     f'({feat_channels}), got {d[key]}')
        if ffn.get('num_fcs', 2) != 2:
            raise ValueError(f"encoder.layer_cfg.ffn_cfg.num_fcs must be 2, got {ffn['num_fcs']}")
        if attn.get('batch_first', True) is not True:
            raise ValueError('encoder.layer_cfg.self_attn_cfg.batch_first must be True')
        unknown = set(attn) - {'embed_dims', 'num_heads', 'num_levels', 'num_points', 'dropout',
                               *_IGNORED_ATTN_KEYS}
        if unknown:
            raise ValueError(f'encoder.layer_cfg.self_attn_cfg: unknown keys {sorted(unknown)}')
        super().__init__(
            in_channels=in_channels,
            strides=strides,
            feat_channels=feat_channels,
            out_channels=out_channels,
            num_outs=num_outs,
            num_encoder_levels=attn.get('num_levels', 3),
            num_layers=encoder.get('num_layers', 6),
            num_heads=attn.get('num_heads', 8),
            num_points=attn.get('num_points', 4),
            ffn_channels=ffn.get('feedforward_channels', 1024),
            dropout=attn.get('dropout', 0.0),
            ffn_dropout=ffn.get('ffn_drop', 0.0),
            # resolved here so that a bad config names its key
            ffn_act=get_act_layer(ffn.get('act_cfg') or dict(type='ReLU'),
                                  'encoder.layer_cfg.ffn_cfg.act_cfg'),
            act=get_act_layer(act_cfg or dict(type='ReLU'), 'act_cfg'),
            learnable_power=learnable_shepard_power,
            positional_encoding=dict(positional_encoding or dict(num_feats=feat_channels // 2,
                                                                 normalize=True)),
            **kwargs)
        self.init_cfg = copy.deepcopy(init_cfg)  # BaseModule.__init__ ran with None

    def init_weights(self) -> None:
        """Default (mmdet-style) initialisation, then ``BaseModule.init_weights``:
        ``init_cfg`` (``Pretrained`` last). As mmdet's ``MSDeformAttnPixelDecoder``, the
        default initialisation runs here and not only at construction, so that a parent's
        generic ``init_cfg`` (applied before its children's ``init_weights``) does not
        replace it."""
        if not self.is_init:  # a second call only warns (BaseModule), it changes nothing
            self.reset_parameters()
        super().init_weights()

    def forward(self, feats: Sequence[Union[Tensor, PointFeatures]]
                ) -> Tuple[Tensor, List[Tensor]]:
        """mmdet/mmseg contract: dense mask features and dense multi-scale maps."""
        return super().forward(feats, dense_multi_scale=True)

    def forward_points(self, feats: Sequence[Union[Tensor, PointFeatures]]
                       ) -> Tuple[Tensor, List[PointFeatures]]:
        """Dense mask features and point-token multi-scale features (coarsest first)."""
        return super().forward(feats, dense_multi_scale=False)
