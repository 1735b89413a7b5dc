"""Reusable measurement code behind ``tools/analysis/get_flops.py`` and ``benchmark.py``.

``measure`` and ``complexity`` need only PyTorch; ``model_inputs`` builds models
from mmdet/mmseg configs (and from ``pkg.module:callable`` with PyTorch alone).
"""
from .complexity import FlopCount, count_flops, count_parameters, human, parameters_by_module
from .measure import PeakMemory, Timing, format_table, time_alternating, time_callable

__all__ = ['FlopCount', 'count_flops', 'count_parameters', 'human', 'parameters_by_module',
           'PeakMemory', 'Timing', 'format_table', 'time_alternating', 'time_callable']
