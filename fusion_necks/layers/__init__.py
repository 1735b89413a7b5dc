"""The papers' fusion modules as plain ``nn.Module`` s (no OpenMMLab imports)."""
from .asff_fusion import ASFFLevelFusion
from .asff_source import ASFFSource
from .baff import BAFF
from .cross_level_attention import CrossLevelAttention
from .fine import FINE
from .fusion_weights import (FusionWeightRecorder, iter_fusion_weight_maps,
                             set_fusion_weight_recording)

__all__ = ['ASFFLevelFusion', 'ASFFSource', 'BAFF', 'CrossLevelAttention', 'FINE', 'FusionWeightRecorder', 'iter_fusion_weight_maps', 'set_fusion_weight_recording']
