"""Backbones as plain PyTorch modules.

The mm-facing wrapper ``autofocusformer_backbone.AutoFocusFormerBackbone`` (registered as
``AutoFocusFormer`` by ``fusion_necks.registry``) is not imported here, so that this
package needs only PyTorch.
"""
# -- AutoFocusFormer --
from .autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormer, PointFeatures

__all__ = ['AFF_ARCH_SETTINGS', 'AutoFocusFormer', 'PointFeatures']
