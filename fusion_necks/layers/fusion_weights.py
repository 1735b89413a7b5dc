"""Recording of learned fusion weights, shared by every fusion module.

ASFF's per-pixel softmax weights, BAFF's block-wise sigmoid weights and FINE's
modulation maps are what users want to look at after training
(``tools/analysis/visualize_fusion_weights.py``, ``visualize_fine.py``). A module
that mixes in :class:`FusionWeightRecorder` calls :meth:`_record_fusion_weights`
in its ``forward``; nothing is kept (and nothing costs memory) unless
``record_fusion_weights`` was switched on, so the module's return type and its
training behaviour never change.
"""
from typing import Dict, Iterator, Tuple

import torch
from torch import nn


class FusionWeightRecorder:
    """Mixin for ``nn.Module`` s whose fusion weights can be visualised.

    Convention for recorded tensors: ``B x S x H x W`` with ``S`` the number of
    sources being weighted (ASFF: the N levels; BAFF: 1, the shallow weight ``w``),
    values in ``[0, 1]``, at the resolution where the weights are applied.
    Modules may record other named maps (FINE: ``'high'``, ``'low'``, ``'M'``,
    ``'aligned'``) with their own documented shapes.
    """

    record_fusion_weights: bool = False

    def _record_fusion_weights(self, name: str, weights: torch.Tensor) -> None:
        if not self.record_fusion_weights:
            return
        if '_fusion_weight_maps' not in self.__dict__:
            self.__dict__['_fusion_weight_maps'] = {}
        self.__dict__['_fusion_weight_maps'][name] = weights.detach()

    def fusion_weight_maps(self) -> Dict[str, torch.Tensor]:
        """The maps recorded by the last forward pass (empty when recording is off)."""
        return dict(self.__dict__.get('_fusion_weight_maps', {}))


def set_fusion_weight_recording(model: nn.Module, enabled: bool = True) -> int:
    """Switch recording on/off for every recorder inside ``model``; returns how many."""
    n = 0
    for module in model.modules():
        if isinstance(module, FusionWeightRecorder):
            module.record_fusion_weights = enabled
            if not enabled:
                module.__dict__.pop('_fusion_weight_maps', None)
            n += 1
    return n


def iter_fusion_weight_maps(model: nn.Module) -> Iterator[Tuple[str, str, torch.Tensor]]:
    """Yield ``(module_name, map_name, tensor)`` for every map recorded in ``model``."""
    for module_name, module in model.named_modules():
        if isinstance(module, FusionWeightRecorder):
            for map_name, tensor in module.fusion_weight_maps().items():
                yield module_name, map_name, tensor
