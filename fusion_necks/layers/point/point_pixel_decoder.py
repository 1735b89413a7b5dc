"""Point-based Mask2Former pixel decoder (AutoFocusFormer, CVPR 2023, Sec. 4.1), plain PyTorch.

Mask2Former's pixel decoder (Cheng et al., CVPR 2022; mmdet ``MSDeformAttnPixelDecoder``)
runs 6 multi-scale deformable-attention encoder layers over the three coarsest backbone
levels and an FPN step to the stride-4 level, whose output gives the per-pixel mask
features. AutoFocusFormer's tokens are not on a grid, so every piece works on point tokens
(official ``mask2former/modeling/pixel_decoder/msdeformattn_pc.py``, apple/ml-autofocusformer-segmentation):

============================  ===========================================================
grid decoder (mmdet)          point decoder (this module)
============================  ===========================================================
1x1 conv + GN input proj.     ``Linear + LayerNorm``
sine encoding of the cell     sine encoding of the token's canvas (x, y), + level embedding
MS deformable attention       :class:`~.point_deform_attn.PointMSDeformAttn`: 4 nearest
(bilinear 2x2 sampling)       tokens per sampling point, inverse-distance weights with a
                              learnable power initialised to 6, one per layer
bilinear upsampling           inverse-distance interpolation from the 4 nearest tokens,
                              fixed power 6
1x1 lateral conv + GN         ``Linear + LayerNorm``
3x3 conv + GN + ReLU          :class:`~.point_conv.PointConv` over the 9 nearest tokens
                              + LayerNorm + ReLU
1x1 mask-feature conv         ``Linear`` on the stride-4 tokens, returned as a dense
                              ``B x C x h x w`` map (the stride-4 level is the full grid)
============================  ===========================================================

Inputs are, per backbone level (finest first), either a
:class:`~fusion_necks.backbones.autofocusformer.PointFeatures` (``feat B x N x C``,
``pos B x N x 2`` on the stride-4 canvas) or a dense ``B x C x H_l x W_l`` map, which is
read as the full grid of tokens at the centres of its cells (so any grid backbone works
and, on grids, the outputs have exactly the shapes of mmdet's decoder).
"""
from functools import partial
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..conv_norm_act import ConvNormAct, LayerSpec, create_act_layer
from ...ops.point_features import PointFeatures
from ...ops.gather import batched_index_select
from ...ops.inverse_distance import inverse_distance_interpolate
from ...ops.knn import knn
from ...utils.validation import check_int
from .point_conv import PointConv
from .point_deform_attn import PointMSDeformAttn, SamplingLevels, build_sampling_levels
from .point_neighbour_search import NeighbourTable
from .point_position_encoding import point_sine_encoding

def caffe2_xavier_(linear: nn.Linear) -> None:
    """mmengine's ``caffe2_xavier_init`` (Kaiming-uniform, a=1) with zero bias."""
    nn.init.kaiming_uniform_(linear.weight, a=1, mode='fan_in', nonlinearity='leaky_relu')
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class PointDeformEncoderLayer(nn.Module):
    """Post-norm Deformable-DETR encoder layer on point tokens:
    ``x = LN(x + PointMSDeformAttn(x)); x = LN(x + FFN(x))``.

    ``ffn_act`` is a layer spec (:mod:`fusion_necks.layers.conv_norm_act`: ``'relu'``,
    ``dict(type='GELU')``, a callable).
    """

    def __init__(self, embed_dims: int = 256, ffn_channels: int = 1024, dropout: float = 0.0,
                 ffn_dropout: float = 0.0, ffn_act: LayerSpec = 'relu', **attn_kwargs) -> None:
        super().__init__()
        self.self_attn = PointMSDeformAttn(embed_dims, dropout=dropout, **attn_kwargs)
        self.norm1 = nn.LayerNorm(embed_dims)
        # in place (where the activation has the option, e.g. ReLU): its input is a Linear
        # output that autograd does not keep (Linear's backward uses its own input), as in
        # mmcv's FFN; it saves one full-size temporary per call
        self.ffn = nn.Sequential(
            nn.Linear(embed_dims, ffn_channels),
            create_act_layer(ffn_act, inplace=True, name='ffn_act'),
            nn.Dropout(ffn_dropout),
            nn.Linear(ffn_channels, embed_dims), nn.Dropout(ffn_dropout))
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, ref_pos: Tensor,
                levels: SamplingLevels) -> Tensor:
        query = self.norm1(query + self.self_attn(query, query_pos, ref_pos, query, levels))
        return self.norm2(query + self.ffn(query))


class PointPixelDecoder(nn.Module):
    """Point-based Mask2Former pixel decoder (AFF Sec. 4.1), plain PyTorch.

    Args:
        in_channels: channels of each backbone level, finest first.
        strides: nominal stride of each level (4, 8, 16, 32); the finest stride is the
            canvas stride, positions of all levels are in its units.
        feat_channels: width of the decoder (256).
        out_channels: width of the mask features (256).
        num_outs: number of multi-scale outputs for the transformer decoder (3).
        num_encoder_levels: coarsest levels that go through the encoder (3).
        num_layers: encoder layers (6).
        num_heads, num_points: deformable attention heads (8) and points per head and
            level (4).
        ffn_channels: encoder FFN width (1024).
        dropout, ffn_dropout: dropout after the attention and in the FFN of the encoder
            (0 in the official configs).
        ffn_act: FFN activation, a layer spec (``'relu'``; also ``'gelu'``, an mmcv-style
            dict or a callable, see :mod:`fusion_necks.layers.conv_norm_act`).
        act: activation after the FPN PointConv, a layer spec (``'relu'``).
        shepard_power: initial inverse-distance power of the deformable attention (6).
        learnable_power: learn it, one scalar per encoder layer (True, the paper).
        num_interp_neighbours: tokens per sampling point / per upsampled token (4).
        upsample_power: fixed inverse-distance power of the FPN upsampling (6, as the
            official code; also used to rasterise non-grid outputs).
        pointconv_neighbours: k of the FPN PointConv (9, in place of the 3x3 conv).
        pointconv_mid_channels: C_mid of its weight net (4, paper Sec. 4.1).
        expanded_rel_pos, rel_pos_order, pointconv_rel_pos_sign, pointconv_norm: see
            :class:`~.point_conv.PointConv` (paper defaults; the official code uses
            ``rel_pos_order='official'``, ``'centre_minus_neighbour'``, ``True``).
        offset_units, neighbour_search: see :class:`~.point_deform_attn.PointMSDeformAttn`.
        num_candidates: candidates per canvas cell of the neighbour tables (16; use 4
            with ``neighbour_search='grid_table'``).
        positional_encoding: keyword arguments of
            :func:`~.point_position_encoding.point_sine_encoding` (``num_feats`` must be
            ``feat_channels / 2``).
        max_elements: chunk bound of the point ops.

    ``forward(inputs)`` returns ``(mask_feature, multi_scale)``: the dense ``B x
    out_channels x h x w`` mask features on the canvas of the finest level, and
    ``num_outs`` :class:`PointFeatures` (coarsest first, ``feat_channels`` wide). With
    ``dense_multi_scale=True`` the multi-scale outputs are dense ``B x C x H_l x W_l`` maps
    (the mmdet pixel-decoder contract): dense inputs are reshaped back, point inputs are
    rasterised onto their nominal grid by inverse-distance interpolation.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 num_encoder_levels: int = 3,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 num_points: int = 4,
                 ffn_channels: int = 1024,
                 dropout: float = 0.0,
                 ffn_dropout: float = 0.0,
                 ffn_act: LayerSpec = 'relu',
                 act: LayerSpec = 'relu',
                 shepard_power: float = 6.0,
                 learnable_power: bool = True,
                 num_interp_neighbours: int = 4,
                 upsample_power: float = 6.0,
                 pointconv_neighbours: int = 9,
                 pointconv_mid_channels: int = 4,
                 expanded_rel_pos: bool = True,
                 rel_pos_order: str = 'paper',
                 pointconv_rel_pos_sign: str = 'neighbour_minus_centre',
                 pointconv_norm: bool = False,
                 offset_units: str = 'canvas',
                 neighbour_search: str = 'exact',
                 num_candidates: int = 16,
                 positional_encoding: Optional[dict] = None,
                 max_elements: int = 1 << 22) -> None:
        super().__init__()
        in_channels, strides = list(in_channels), list(strides)
        n = len(in_channels)
        if len(strides) != n:
            raise ValueError(f'strides must have one entry per level ({n}), got {strides}')
        if any(s % strides[0] for s in strides):
            raise ValueError(f'strides must be multiples of the finest stride, got {strides}')
        check_int('num_encoder_levels', num_encoder_levels, 1, n)
        check_int('num_outs', num_outs, 1, n)
        if num_candidates < num_interp_neighbours:
            raise ValueError(f'num_candidates ({num_candidates}) must be >= '
                             f'num_interp_neighbours ({num_interp_neighbours})')
        pe = dict(num_feats=feat_channels // 2, normalize=True)
        pe.update(positional_encoding or {})
        if 2 * pe['num_feats'] != feat_channels:
            raise ValueError(f'positional_encoding.num_feats must be feat_channels / 2 = '
                             f'{feat_channels / 2}, got {pe["num_feats"]}')
        self.in_channels = in_channels
        self.strides = strides
        self.feat_channels = feat_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.num_input_levels = n
        self.num_encoder_levels = num_encoder_levels
        self.num_interp_neighbours = num_interp_neighbours
        self.upsample_power = upsample_power
        self.num_candidates = num_candidates
        self.positional_encoding = pe

        # from the coarsest level down (low to high resolution), as mmdet
        self.input_projs = nn.ModuleList(
            nn.Sequential(nn.Linear(in_channels[i], feat_channels), nn.LayerNorm(feat_channels))
            for i in range(n - 1, n - num_encoder_levels - 1, -1))
        self.level_encoding = nn.Embedding(num_encoder_levels, feat_channels)
        self.layers = nn.ModuleList(
            PointDeformEncoderLayer(
                feat_channels, ffn_channels, dropout, ffn_dropout, ffn_act, num_heads=num_heads,
                num_levels=num_encoder_levels, num_points=num_points,
                num_neighbours=num_interp_neighbours, power=shepard_power,
                learnable_power=learnable_power, offset_units=offset_units,
                neighbour_search=neighbour_search, max_elements=max_elements)
            for _ in range(num_layers))
        # FPN for the levels that skip the encoder (from low to high resolution)
        self.lateral_projs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for i in range(n - num_encoder_levels - 1, -1, -1):
            self.lateral_projs.append(
                nn.Sequential(nn.Linear(in_channels[i], feat_channels, bias=False),
                              nn.LayerNorm(feat_channels)))
            # PointConv over the pointconv_neighbours (9) nearest tokens (the grid
            # decoder's 3x3 conv) -> LayerNorm -> act, B x N x C -> B x N x C; the norm
            # keeps the child name `norm` (not ConvNormAct's default `ln`) so the
            # state-dict keys output_convs.<j>.norm.* of existing checkpoints stay valid
            point_conv = partial(PointConv, num_neighbours=pointconv_neighbours,
                                 mid_channels=pointconv_mid_channels,
                                 expanded_rel_pos=expanded_rel_pos, rel_pos_order=rel_pos_order,
                                 rel_pos_sign=pointconv_rel_pos_sign,
                                 aggregation_norm=pointconv_norm, max_elements=max_elements)
            self.output_convs.append(
                ConvNormAct(feat_channels, feat_channels, norm_layer=nn.LayerNorm,
                            act_layer=act, conv_layer=point_conv, norm_name='norm'))
        self.mask_feature = nn.Linear(feat_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """mmdet ``MSDeformAttnPixelDecoder.init_weights`` on the point layers: Xavier
        input projections, Caffe2-Xavier laterals / PointConvs / mask features, N(0, 1)
        level embeddings, Xavier-normal encoder weights, then Deformable DETR's attention
        init (and the initial Shepard power)."""
        for proj in self.input_projs:
            nn.init.xavier_uniform_(proj[0].weight)
            nn.init.zeros_(proj[0].bias)
        for lat in self.lateral_projs:
            caffe2_xavier_(lat[0])
        for conv in self.output_convs:
            caffe2_xavier_(conv.conv.linear)
            caffe2_xavier_(conv.conv.weight_net[0])
        caffe2_xavier_(self.mask_feature)
        nn.init.normal_(self.level_encoding.weight, 0, 1)
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        for layer in self.layers:
            layer.self_attn.reset_parameters()

    # ------------------------------------------------------------------ inputs
    def _to_levels(self, inputs: Sequence[Union[Tensor, PointFeatures]]
                   ) -> Tuple[List[PointFeatures], Tuple[int, int]]:
        """Every input level as :class:`PointFeatures` on the level-0 canvas (stride
        ``strides[i]``, canvas stride ``strides[0]``); dense maps keep their ``grid``."""
        s0 = self.strides[0]
        if len(inputs) != self.num_input_levels:
            raise ValueError(f'expected {self.num_input_levels} levels, got {len(inputs)}')
        canvas = None
        levels = []
        for i, x in enumerate(inputs):
            f = self.strides[i] // s0   # token spacing on the canvas
            if isinstance(x, Tensor):
                if x.dim() != 4:
                    raise ValueError(f'level {i}: expected a B x C x H x W map or PointFeatures, '
                                     f'got a tensor of shape {tuple(x.shape)}')
                b, c, hl, wl = x.shape
                if i == 0:
                    canvas = (hl, wl)
                ys, xs = torch.meshgrid(torch.arange(hl, device=x.device),
                                        torch.arange(wl, device=x.device), indexing='ij')
                pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
                # cell centres on the finest grid: integer when f is odd (f = 1)
                pos = pos * f + (f - 1) // 2 if f % 2 else pos.float() * f + (f - 1) / 2
                levels.append(PointFeatures(x.flatten(2).transpose(1, 2), pos.expand(b, -1, -1),
                                            canvas, self.strides[i], s0, grid=(hl, wl)))
            else:
                feat, pos = x.feat, x.pos
                if i == 0:
                    canvas = tuple(x.canvas)
                elif tuple(x.canvas) != canvas:
                    raise ValueError(f'level {i}: canvas {x.canvas} differs from level 0 {canvas}')
                levels.append(PointFeatures(feat, pos, canvas, self.strides[i], s0))
            if levels[-1].feat.shape[-1] != self.in_channels[i]:
                raise ValueError(f'level {i}: expected {self.in_channels[i]} channels, got '
                                 f'{levels[-1].feat.shape[-1]}')
        return levels, canvas

    def _interp_neighbours(self, query_pos: Tensor, src_pos: Tensor,
                           table: Optional[NeighbourTable]) -> Tensor:
        """4 nearest source tokens of each query token (exact); read from the source
        level's neighbour table when the queries are integer canvas points."""
        k = min(self.num_interp_neighbours, src_pos.shape[1])
        if table is not None and not query_pos.is_floating_point():
            h, w = table.canvas
            lin = query_pos[..., 1] * w + query_pos[..., 0]
            inside = bool(((query_pos[..., 0] >= 0) & (query_pos[..., 0] < w) &
                           (query_pos[..., 1] >= 0) & (query_pos[..., 1] < h)).all())
            if inside:
                return batched_index_select(table.idx, lin)[..., :k]
        return knn(query_pos.float(), src_pos.float(), k)[1]

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: Sequence[Union[Tensor, PointFeatures]],
                dense_multi_scale: bool = False) -> Tuple[Tensor, list]:
        levels, canvas = self._to_levels(inputs)
        n, nl = self.num_input_levels, self.num_encoder_levels
        enc = [levels[i] for i in range(n - 1, n - nl - 1, -1)]  # coarsest first
        tokens, pes = [], []
        for i, lv in enumerate(enc):
            tokens.append(self.input_projs[i](lv.feat))
            pe = point_sine_encoding(lv.pos, canvas, **self.positional_encoding)
            pes.append(pe.to(tokens[-1].dtype) + self.level_encoding.weight[i])
        query = torch.cat(tokens, 1)
        query_pos = torch.cat(pes, 1)
        ref_pos = torch.cat([lv.pos.to(query.dtype) for lv in enc], 1)
        sampling = build_sampling_levels([lv.pos for lv in enc], canvas,
                                         [lv.spacing for lv in enc], self.num_candidates)
        for layer in self.layers:
            query = layer(query, query_pos, ref_pos, sampling)

        outs = list(torch.split(query, [lv.feat.shape[1] for lv in enc], 1))
        out_levels = list(enc)
        table = sampling.tables[-1]
        for j, i in enumerate(range(n - nl - 1, -1, -1)):
            lv = levels[i]
            cur = self.lateral_projs[j](lv.feat)
            src = out_levels[-1]
            nbr = self._interp_neighbours(lv.pos, src.pos, table)
            up = inverse_distance_interpolate(lv.pos, src.pos, outs[-1], power=self.upsample_power,
                                              nbr_idx=nbr)
            outs.append(self.output_convs[j](cur + up.to(cur.dtype), lv.pos, canvas))
            out_levels.append(lv)
            table = None

        finest = out_levels[-1]
        mask_tokens = self.mask_feature(outs[-1])
        mask_feature = self._to_dense(mask_tokens, finest, canvas)
        multi_scale = []
        for feat, lv in list(zip(outs, out_levels))[:self.num_outs]:
            if dense_multi_scale:
                multi_scale.append(self._to_dense(feat, lv, canvas))
            else:
                multi_scale.append(lv._replace(feat=feat))
        return mask_feature, multi_scale

    def _to_dense(self, feat: Tensor, lv: PointFeatures, canvas: Tuple[int, int]) -> Tensor:
        return lv._replace(feat=feat).to_dense(self.num_interp_neighbours, self.upsample_power)

