"""Recording of learned fusion weights and FINE maps through forward hooks.

ASFF's per-pixel softmax weights, BAFF's block-wise sigmoid weights and FINE's
modulation maps are what users want to look at after training
(``tools/analysis/visualize_fusion_weights.py``, ``visualize_fine.py``,
:class:`~fusion_necks.engine.FusionStatsHook`). The modules know nothing about it:
the tools attach forward hooks with :func:`set_fusion_weight_recording` (or the
context manager :func:`record_fusion_maps`) and read the maps of the last forward
pass with :func:`iter_fusion_weight_maps` / :func:`fusion_weight_maps`. Without
hooks nothing is kept and nothing is computed, and with them the modules' outputs
are the same tensors (a hook only reads; tested).

What is recorded, per module type:

- :class:`~fusion_necks.layers.ASFFLevelFusion`: ``'weights'`` ``B x S x H x W``, the
  softmax weights of the ``S`` fused levels (``1 / S`` everywhere for
  ``weight_mode='uniform'``), read at the module's ``weights_tap``.
- :class:`~fusion_necks.layers.BAFF`: ``'weights'`` ``B x 1 x H x W``, the shallow
  weight ``w`` at the resolution of the inputs, read at ``weights_tap``.
- :class:`~fusion_necks.layers.FINE` (Figure 8): ``'high'`` ``B x C x H_high x
  W_high`` (``F_high``), ``'low'`` ``B x C x H x W`` (``F_low``), ``'M'`` ``B x C x H x
  W`` (the modulation map, brought to ``F_low``'s size with the module's own ``Up``
  from the attention output: FINE's fast paths never materialise it) and
  ``'aligned'`` (the output).

Multi-source weight maps share one convention: ``B x S x H x W``, values in
``[0, 1]``, at the resolution where they are applied.
"""
import contextlib
import weakref
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .asff_fusion import ASFFLevelFusion
from .baff import BAFF
from .fine import FINE

# module -> {map name: detached tensor} of its last forward; filled by the hooks only
_MAPS: 'weakref.WeakKeyDictionary[nn.Module, Dict[str, Tensor]]' = weakref.WeakKeyDictionary()
# module -> hook handles, while recording is on for it
_HANDLES: 'weakref.WeakKeyDictionary[nn.Module, List[RemovableHandle]]' = \
    weakref.WeakKeyDictionary()


def store_fusion_map(module: nn.Module, name: str, tensor: Tensor) -> None:
    """Keep ``tensor`` (detached) as map ``name`` of ``module``; for hook builders."""
    _MAPS.setdefault(module, {})[name] = tensor.detach()


def _hook_weights_tap(module: nn.Module) -> List[RemovableHandle]:
    """ASFF / BAFF: the weight map passes through ``module.weights_tap`` (an identity)."""
    def hook(_tap, _args, output):
        store_fusion_map(module, 'weights', output)
    return [module.weights_tap.register_forward_hook(hook)]


def _hook_fine(module: FINE) -> List[RemovableHandle]:
    """FINE: inputs and output of the block, and ``M`` from its attention's output."""
    pending: Dict[str, Tensor] = {}

    def attn_hook(_attn, _args, output):
        pending['m'] = output.detach()    # B x C x h x w tokens (sampled) or full size

    def fine_hook(_fine, args, kwargs, output):
        low = args[0] if args else kwargs['low']
        high = args[1] if len(args) > 1 else kwargs['high']
        m = pending.pop('m')
        if module.sampled:
            m = module.upsample(m, low.shape[-2], low.shape[-1])
        for name, t in (('high', high), ('low', low), ('M', m), ('aligned', output)):
            store_fusion_map(module, name, t)

    return [module.attn.register_forward_hook(attn_hook),
            module.register_forward_hook(fine_hook, with_kwargs=True)]


_HOOK_BUILDERS: Dict[type, Callable[[nn.Module], List[RemovableHandle]]] = {
    ASFFLevelFusion: _hook_weights_tap,
    BAFF: _hook_weights_tap,
    FINE: _hook_fine,
}


def register_fusion_map_hooks(cls: type,
                              build: Callable[[nn.Module], List[RemovableHandle]]) -> None:
    """Make modules of type ``cls`` recordable (e.g. a user's own fusion module).

    ``build(module)`` registers the forward hooks that call :func:`store_fusion_map`
    and returns their handles; :func:`set_fusion_weight_recording` calls it.
    """
    _HOOK_BUILDERS[cls] = build


def _recordable(model: nn.Module) -> Iterator[Tuple[str, nn.Module, Callable]]:
    for name, module in model.named_modules():
        for cls, build in _HOOK_BUILDERS.items():
            if isinstance(module, cls):
                yield name, module, build
                break


def set_fusion_weight_recording(model: nn.Module, enabled: bool = True) -> int:
    """Attach (``enabled``) or remove the recording hooks of every fusion module in
    ``model``; returns how many modules that concerns. Removing also drops the maps."""
    n = 0
    for _, module, build in _recordable(model):
        n += 1
        if enabled:
            if module not in _HANDLES:
                _HANDLES[module] = build(module)
        else:
            for handle in _HANDLES.pop(module, []):
                handle.remove()
            _MAPS.pop(module, None)
    return n


@contextlib.contextmanager
def record_fusion_maps(model: nn.Module) -> Iterator[int]:
    """``with record_fusion_maps(model) as n: model(x); maps = list(iter_...(model))``.

    Yields the number of fusion modules; the hooks and maps are gone afterwards.
    """
    n = set_fusion_weight_recording(model, True)
    try:
        yield n
    finally:
        set_fusion_weight_recording(model, False)


def fusion_weight_maps(module: nn.Module) -> Dict[str, Tensor]:
    """The maps recorded for ``module`` by the last forward pass (empty when off)."""
    return dict(_MAPS.get(module, {}))


def iter_fusion_weight_maps(model: nn.Module) -> Iterator[Tuple[str, str, torch.Tensor]]:
    """Yield ``(module_name, map_name, tensor)`` for every map recorded in ``model``."""
    for module_name, module in model.named_modules():
        for map_name, tensor in _MAPS.get(module, {}).items():
            yield module_name, map_name, tensor
