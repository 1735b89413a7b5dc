"""Point-based Mask2Former pixel decoder of AutoFocusFormer (CVPR 2023, Sec. 4.1).

The plain-PyTorch pieces are exported here. The OpenMMLab-facing classes,
``point_msdeformattn_pixel_decoder.PointMSDeformAttnPixelDecoder`` (mmdet + mmseg) and
``point_mask2former_head.PointMask2FormerHead`` (mmseg), are imported lazily by
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
