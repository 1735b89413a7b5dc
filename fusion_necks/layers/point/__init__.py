"""Layers on point tokens (plain PyTorch), and the point-based Mask2Former pixel decoder
of AutoFocusFormer (CVPR 2023, Sec. 4.1) built from them.

The token type is :class:`fusion_necks.ops.point_features.PointFeatures`. The
OpenMMLab-facing classes, ``fusion_necks.decode_heads.point_msdeformattn_pixel_decoder.
PointMSDeformAttnPixelDecoder`` (mmdet + mmseg) and ``fusion_necks.decode_heads.
point_mask2former_head.PointMask2FormerHead`` (mmseg), are imported lazily by
``fusion_necks.registry``.
"""
from .point_conv import PointConv, grid_self_knn, self_knn
from .point_deform_attn import PointMSDeformAttn, SamplingLevels, build_sampling_levels
from .point_neighbour_search import NeighbourTable, build_neighbour_table, nearest_tokens
from .point_pixel_decoder import PointPixelDecoder
from .point_position_encoding import point_sine_encoding

__all__ = [
    'NeighbourTable', 'PointConv', 'PointMSDeformAttn', 'PointPixelDecoder', 'SamplingLevels',
    'build_neighbour_table', 'build_sampling_levels', 'grid_self_knn', 'nearest_tokens',
    'point_sine_encoding', 'self_knn'
]
