"""Backbones as plain PyTorch modules.

``AutoFocusFormerNet`` is the plain network. The mm-facing backbone
``autofocusformer_backbone.AutoFocusFormer`` (a ``BaseModule``, registered under its class
name by ``fusion_necks.registry``) is not imported here, so that this package needs only
PyTorch.
"""
# -- AutoFocusFormer --
from ..ops.point_features import PointFeatures  # re-exported: the backbone's output type
from .autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormerNet

__all__ = ['AFF_ARCH_SETTINGS', 'AutoFocusFormerNet', 'PointFeatures']
