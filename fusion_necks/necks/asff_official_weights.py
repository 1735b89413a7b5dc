"""Official YOLOv3-ASFF parameter names -> :class:`ASFFNeck` (the official modules).

The official repository (GOATmessi8/ASFF, formerly ruinmessi/ASFF) holds three
modules ``level_{L}_fusion`` (``L = 0`` is stride 32) of class ``ASFF`` (or
``ASFFmobile``) in ``models/yolov3_asff.py``. Their parameters map one to one onto
the ASFFNeck ``asff_official`` of ``configs/_base_/necks/asff_official.py`` (or
``asff_official_rfb`` / ``asff_official_mobile``), whose levels are in the same
coarse-to-fine order::

    level_{L}_fusion.stride_level_{n}.conv.*       -> fusions.{L}.sources.{n}.resize.0.conv.*
    level_{L}_fusion.stride_level_{n}.batch_norm.* -> fusions.{L}.sources.{n}.resize.0.bn.*
    level_{L}_fusion.compress_level_{n}.<same>     -> fusions.{L}.sources.{n}.resize.0.<same>
    level_{L}_fusion.weight_level_{n}.<same>       -> fusions.{L}.sources.{n}.weight.<same>
    level_{L}_fusion.weight_levels.{weight,bias}   -> fusions.{L}.weight_levels.{weight,bias}
    level_{L}_fusion.expand.<same>                 -> fusions.{L}.expand.<same>

(``stride_level_n`` is the 3x3 stride-2 conv of a finer source, after the
parameter-free max-pool for the 4x case; ``compress_level_n`` the 1x1 conv of a
coarser source; ``batch_norm`` is our ``bn``, including ``running_mean``,
``running_var`` and ``num_batches_tracked``.) A DataParallel/DDP ``module.`` prefix
is stripped; everything outside the fusion modules (Darknet, YOLO heads) is
returned separately as unused. No mm imports: this runs with PyTorch only.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch

_KEY = re.compile(r'^level_(\d)_fusion\.(.+)$')
_SUB = [
    (re.compile(r'^(?:stride|compress)_level_(\d)\.(.+)$'), 'sources.{0}.resize.0.{1}'),
    (re.compile(r'^weight_level_(\d)\.(.+)$'), 'sources.{0}.weight.{1}'),
    (re.compile(r'^weight_levels\.(weight|bias)$'), 'weight_levels.{0}'),
    (re.compile(r'^expand\.(.+)$'), 'expand.{0}'),
]
_LAYER = {'conv': 'conv', 'batch_norm': 'bn'}


def official_asff_key(key: str) -> str:
    """Our name for one official parameter/buffer name (raises ``KeyError`` if none)."""
    m = _KEY.match(key)
    if m is None:
        raise KeyError(f'{key!r} is not a parameter of an official level_<L>_fusion module')
    level, rest = m.groups()
    for pattern, template in _SUB:
        sub = pattern.match(rest)
        if sub is None:
            continue
        parts = list(sub.groups())
        tail = parts[-1].split('.', 1)
        if template != 'weight_levels.{0}':
            if tail[0] not in _LAYER or len(tail) != 2:
                break
            parts[-1] = f'{_LAYER[tail[0]]}.{tail[1]}'
        return f'fusions.{level}.' + template.format(*parts)
    raise KeyError(f'{key!r}: unknown official ASFF parameter name')


def unwrap_checkpoint(checkpoint: Mapping) -> Mapping[str, torch.Tensor]:
    """The state dict inside an official checkpoint (``model``/``state_dict`` or raw)."""
    for k in ('model', 'state_dict', 'model_state_dict'):
        if k in checkpoint and isinstance(checkpoint[k], Mapping):
            return checkpoint[k]
    return checkpoint


def convert_official_asff(state_dict: Mapping[str, torch.Tensor],
                          prefix: str = '') -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Rename an official YOLOv3-ASFF state dict for the official ``ASFFNeck`` configs.

    Args:
        state_dict: the official model's (or checkpoint's, see :func:`unwrap_checkpoint`)
            state dict; ``module.`` prefixes are stripped.
        prefix: put in front of every new name, e.g. ``'neck.1.'`` when the ASFF neck
            is the second entry of an mmdet ``neck=[...]`` list.

    Returns:
        ``(converted, unused)``: our state dict (load it with ``strict=True`` into a
        bare neck) and the official keys that do not belong to the ASFF modules.
    """
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unused: List[str] = []
    for key, value in state_dict.items():
        bare = key[len('module.'):] if key.startswith('module.') else key
        if _KEY.match(bare) is None:
            unused.append(key)
            continue
        converted[prefix + official_asff_key(bare)] = value
    if not converted:
        raise ValueError('no level_<L>_fusion.* parameters found: is this a YOLOv3-ASFF '
                         'checkpoint from GOATmessi8/ASFF?')
    return converted, unused


def official_asff_key_map(state_dict_keys) -> Dict[str, str]:
    """``{official name: our name}`` for the fusion keys among ``state_dict_keys``."""
    out = {}
    for key in state_dict_keys:
        bare = key[len('module.'):] if key.startswith('module.') else key
        if _KEY.match(bare):
            out[key] = official_asff_key(bare)
    return out
