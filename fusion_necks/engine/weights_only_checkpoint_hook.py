"""Checkpoints that ``torch.load(..., weights_only=True)`` reads: what the inferencers need.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and mmengine 0.10.7 loads
with that default everywhere outside our tools (``DetInferencer``, ``MMSegInferencer``,
``mmseg.apis.init_model``, ``mmdet.apis.init_detector``). A Runner checkpoint fails there:
its ``message_hub`` pickles mmengine ``HistoryBuffer`` objects (with ``getattr`` references
to their statistics methods) and numpy arrays and scalars, none of which the restricted
unpickler accepts, and allow-listing ``getattr`` would defeat the point of it.

:class:`WeightsOnlyCheckpointHook` rewrites those objects, just before mmengine saves,
into tensors, Python numbers and tagged dicts (:func:`to_weights_only`), and turns them
back into ``HistoryBuffer`` / numpy after a Runner loads the file (:func:`from_weights_only`),
so ``--resume`` restores the message hub exactly as before. ``state_dict``, optimizer and
scheduler states are tensors and numbers already and pass through unchanged.
"""
from typing import Any

import numpy as np
import torch

_BUFFER = '__history_buffer__'
_NDARRAY = '__ndarray__'


def _map_items(obj: Any, fn) -> Any:
    """``fn`` applied to the items of a dict (its type kept), list or tuple; else ``obj``."""
    if isinstance(obj, dict):
        return type(obj)((k, fn(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [fn(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(fn(v) for v in obj)
    return obj


def to_weights_only(obj: Any) -> Any:
    """Return ``obj`` with every HistoryBuffer / numpy object replaced by safe types."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, HistoryBuffer):
        log, count = obj.data
        return {_BUFFER: True, 'log_history': to_weights_only(np.asarray(log)),
                'count_history': to_weights_only(np.asarray(count)),
                'max_length': int(obj.max_length)}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in 'USV':
            return to_weights_only(obj.tolist())
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    return _map_items(obj, to_weights_only)


def from_weights_only(obj: Any) -> Any:
    """Inverse of :func:`to_weights_only` (numpy scalars come back as Python numbers)."""
    from mmengine.logging import HistoryBuffer
    if isinstance(obj, dict):
        if obj.get(_BUFFER) is True:
            return HistoryBuffer(from_weights_only(obj['log_history']).tolist(),
                                 from_weights_only(obj['count_history']).tolist(),
                                 obj['max_length'])
        if set(obj) == {_NDARRAY}:
            return obj[_NDARRAY].numpy()
    return _map_items(obj, from_weights_only)


def _hook_base():
    from mmengine.hooks import Hook
    return Hook


class WeightsOnlyCheckpointHook(_hook_base()):
    """Save Runner checkpoints that load with ``weights_only=True`` (module docstring).

    Add it as ``custom_hooks = [dict(type='WeightsOnlyCheckpointHook')]``; our
    ``tools/train.py`` adds it to every run. It only changes how ``meta`` and
    ``message_hub`` are stored; a run resumed from such a checkpoint sees the same
    message hub as from an upstream one.
    """

    # after mmengine's CheckpointHook (priority VERY_LOW) has filled the checkpoint
    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            checkpoint[key] = to_weights_only(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            checkpoint[key] = from_weights_only(checkpoint[key])
