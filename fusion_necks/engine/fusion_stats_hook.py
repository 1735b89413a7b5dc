"""Log what the fusion modules do during training: FINE's modulation, ASFF/BAFF weights.

When a fusion module does not separate from its baseline, the first question is whether
it does anything at all: FINE's residual modulation ``M`` may stay near zero (the block
is then close to the identity), BAFF's block weights may stay at 0.5 and ASFF's softmax
at ``1/S`` (a fixed average). Every ``interval`` training iterations this hook switches
fusion-weight recording on for one forward pass (:mod:`fusion_necks.layers.fusion_weights`;
the numbers of that pass do not change) and logs, per recording module ``name``:

* ``fusion/<name>/M_abs``: mean ``|M|`` of FINE's modulation map;
* ``fusion/<name>/w_mean`` and ``fusion/<name>/w_std``: mean and standard deviation of
  the recorded weights over batch and pixels (BAFF: the shallow weight ``w``; 0.5 / 0
  at a constant 0.5);
* ``fusion/<name>/w_spread`` (multi-source weights, ASFF): mean over pixels of
  ``max_n alpha_n - 1/S`` (0 for uniform weights, ``1 - 1/S`` for a hard choice).

The values go to the message hub, hence into the training log and ``scalars.json``
(``tools/analysis/compare_necks.py`` collects them per run).

    custom_hooks = [dict(type='FusionStatsHook', interval=50)]
"""
from typing import Dict, Optional

import torch

from ..layers.fusion_weights import iter_fusion_weight_maps, set_fusion_weight_recording
from .weights_only_checkpoint_hook import _hook_base


def fusion_statistics(model: torch.nn.Module) -> Dict[str, float]:
    """The statistics above for every map the last forward pass recorded in ``model``."""
    stats: Dict[str, float] = {}
    for name, map_name, t in iter_fusion_weight_maps(model):
        t = t.float()
        key = f'fusion/{name}'
        if map_name == 'M':
            stats[f'{key}/M_abs'] = t.abs().mean().item()
        elif map_name == 'weights':
            stats[f'{key}/w_mean'] = t.mean().item()
            stats[f'{key}/w_std'] = t.std().item()
            if t.dim() == 4 and t.shape[1] > 1:
                stats[f'{key}/w_spread'] = (t.amax(1) - 1.0 / t.shape[1]).mean().item()
    return stats


class FusionStatsHook(_hook_base()):
    """Log fusion statistics every ``interval`` training iterations (module docstring).

    Args:
        interval: iterations between two measured forward passes (>= 1). The first
            iteration is measured too, so a run shows the value at initialisation.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 50) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f'FusionStatsHook: interval must be an int >= 1, got {interval!r}')
        self.interval = interval
        self._on = False
        # key -> [(iteration (1-based), value), ...], for tools that summarise a run
        self.history: Dict[str, list] = {}

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        model = runner.model
        return getattr(model, 'module', model)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        it = runner.iter
        self._on = it == 0 or (it + 1) % self.interval == 0
        if self._on:
            set_fusion_weight_recording(self._model(runner), True)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not self._on:
            return
        model = self._model(runner)
        stats = fusion_statistics(model)
        set_fusion_weight_recording(model, False)   # also drops the recorded maps
        for key, value in stats.items():
            runner.message_hub.update_scalar(f'train/{key}', value)
            self.history.setdefault(key, []).append((runner.iter + 1, value))
        self._on = False
