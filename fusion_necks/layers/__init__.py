"""The papers' fusion modules as plain ``nn.Module`` s (no OpenMMLab imports)."""
from .asff_fusion import ASFFLevelFusion
from .asff_source import ASFFSource
from .baff import BAFF
from .cross_level_attention import CrossLevelAttention
from .fine import FINE
from .fusion_weights import (fusion_weight_maps, iter_fusion_weight_maps, record_fusion_maps,
                             register_fusion_map_hooks, set_fusion_weight_recording,
                             store_fusion_map)

__all__ = ['ASFFLevelFusion', 'ASFFSource', 'BAFF', 'CrossLevelAttention', 'FINE', 'fusion_weight_maps',
           'iter_fusion_weight_maps', 'record_fusion_maps', 'register_fusion_map_hooks',
           'set_fusion_weight_recording', 'store_fusion_map']
