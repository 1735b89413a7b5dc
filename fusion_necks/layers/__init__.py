"""The papers' fusion modules as plain ``nn.Module`` s (no OpenMMLab imports)."""
from .fusion_weights import (FusionWeightRecorder, iter_fusion_weight_maps,
                             set_fusion_weight_recording)

__all__ = ['FusionWeightRecorder', 'iter_fusion_weight_maps', 'set_fusion_weight_recording']
