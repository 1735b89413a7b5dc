"""Backbones as plain PyTorch modules (registered by ``fusion_necks.registry``)."""
# -- AutoFocusFormer --
from .autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormer, PointFeatures
from .autofocusformer_backbone import AutoFocusFormerBackbone

__all__ = ['AFF_ARCH_SETTINGS', 'AutoFocusFormer', 'AutoFocusFormerBackbone', 'PointFeatures']
