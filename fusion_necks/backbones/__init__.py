"""Backbones as plain PyTorch modules.

The mm-facing wrapper ``autofocusformer_backbone.AutoFocusFormerBackbone`` (registered as
``AutoFocusFormer`` by ``fusion_necks.registry``) is not imported here, so that this
package needs only PyTorch.
"""
# -- AutoFocusFormer --
from ..ops.point_features import PointFeatures  # re-exported: the backbone's output type
from .autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormer

__all__ = ['AFF_ARCH_SETTINGS', 'AutoFocusFormer', 'PointFeatures']
