"""Build a model from a config, or from ``pkg.module:factory``, with dummy inputs.

Shared by ``tools/analysis/get_flops.py`` and ``benchmark.py``: no dataset is
needed. A *target* is either

- a config file (mmdet or mmseg; the framework is picked from ``default_scope``):
  the model is built with ``fusion_necks.compat`` applied (so no weight download),
  and fed a random ``B x 3 x H x W`` image padded like its data preprocessor
  would pad it, with matching data samples; or
- ``'package.module:callable'`` returning an ``nn.Module`` (a class or a
  factory, called with ``--kwargs``), fed random tensors of the given shapes.
  This path needs only PyTorch.

``part`` selects what is measured: the whole ``model`` (``mode='tensor'`` or
``'predict'``), or one component (``backbone``, ``neck``, ``decode_head``) fed
with the real outputs of the components before it.
"""
import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

PARTS = ('model', 'backbone', 'neck', 'decode_head')
MODES = ('tensor', 'predict')


@dataclass
class Measurable:
    """What to measure: ``fn(*inputs)``, and the module that owns the parameters."""
    name: str
    module: nn.Module
    fn: Callable
    inputs: Tuple[Any, ...]
    input_desc: str


def is_config(target: str) -> bool:
    return target.endswith('.py')


def load_callable(spec: str) -> Callable:
    """``'pkg.module:attr'`` -> the attribute (class or factory)."""
    module_name, sep, attr = spec.partition(':')
    if not sep or not attr:
        raise ValueError(f"expected a config file (*.py) or 'pkg.module:callable', got {spec!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split('.'):
        obj = getattr(obj, part)
    return obj


def parse_shape(text: str) -> Tuple[int, ...]:
    """'1,256,100,168' or '1x256x100x168' -> (1, 256, 100, 168)."""
    parts = text.replace('x', ',').split(',')
    try:
        shape = tuple(int(p) for p in parts if p)
    except ValueError as e:
        raise ValueError(f'bad input shape {text!r}: use comma-separated integers') from e
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f'bad input shape {text!r}: every dimension must be positive')
    return shape


def from_callable(spec: str, input_shapes: Sequence[Sequence[int]], kwargs: Optional[Dict] = None,
                  device: str = 'cpu') -> Measurable:
    """A module built by ``spec(**kwargs)`` fed ``torch.randn`` inputs of ``input_shapes``."""
    if not input_shapes:
        raise ValueError("a 'pkg.module:callable' target needs --inputs SHAPE [SHAPE ...]")
    module = load_callable(spec)(**(kwargs or {}))
    if not isinstance(module, nn.Module):
        raise TypeError(f'{spec} returned {type(module).__name__}, not an nn.Module')
    module = module.to(device).eval()
    inputs = tuple(torch.randn(*s, device=device) for s in input_shapes)
    desc = ' '.join('x'.join(map(str, s)) for s in input_shapes)
    return Measurable(spec, module, module, inputs, desc)


def padded_shape(cfg, h: int, w: int) -> Tuple[int, int]:
    """(H, W) padded to the model's ``data_preprocessor.pad_size_divisor`` (1 if none)."""
    dp = cfg.model.get('data_preprocessor', None) or {}
    div = dp.get('pad_size_divisor', 1) or 1
    return int(math.ceil(h / div) * div), int(math.ceil(w / div) * div)


def _data_samples(scope: str, batch: int, img_shape: Tuple[int, int], pad_shape: Tuple[int, int]):
    meta = dict(img_shape=img_shape, ori_shape=img_shape, pad_shape=pad_shape,
                batch_input_shape=pad_shape, scale_factor=(1.0, 1.0))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta) for _ in range(batch)]
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=meta) for _ in range(batch)]


def from_config(cfg, shape: Tuple[int, int], batch: int = 1, part: str = 'model',
                mode: str = 'tensor', pad: bool = True, device: str = 'cpu',
                name: Optional[str] = None) -> Measurable:
    """The model of ``cfg`` (a loaded Config) on a random image of ``shape``."""
    from mmengine.model import revert_sync_batchnorm

    from fusion_necks.compat import apply_config_compat
    from fusion_necks.utils.config import build_model, detect_scope

    if part not in PARTS:
        raise ValueError(f'part must be one of {PARTS}, got {part!r}')
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    scope = detect_scope(cfg)
    apply_config_compat(cfg, offline=True)  # measured at random init
    model = build_model(cfg, scope)
    model = revert_sync_batchnorm(model).to(device).eval()
    h, w = shape
    ph, pw = padded_shape(cfg, h, w) if pad else (h, w)
    x = torch.randn(batch, 3, ph, pw, device=device)
    samples = _data_samples(scope, batch, (h, w), (ph, pw))
    desc = f'{batch}x3x{ph}x{pw}' + (f' (from {h}x{w})' if (ph, pw) != (h, w) else '')
    name = name or 'model'

    if part == 'model':
        forward = model.forward
        fn = lambda img: forward(img, samples, mode=mode)  # noqa: E731
        return Measurable(name, model, fn, (x,), desc)

    if not hasattr(model, part) or getattr(model, part) is None:
        raise ValueError(f'the model ({type(model).__name__}) has no {part!r}')
    module = getattr(model, part)
    with torch.no_grad():
        feats = x
        if part in ('neck', 'decode_head'):
            feats = model.backbone(x)
        if part == 'decode_head' and getattr(model, 'with_neck', False):
            feats = model.neck(feats)
    forward = module.forward
    if part == 'backbone':
        return Measurable(f'{name}.{part}', module, lambda img: forward(img), (x,), desc)
    feat_desc = ' '.join('x'.join(map(str, f.shape)) for f in feats)
    # Features are passed as one argument (a tuple), as the detectors do.
    return Measurable(f'{name}.{part}', module, lambda fs: forward(fs), (tuple(feats),),
                      f'{desc} -> {part} inputs {feat_desc}')


def build_measurable(target: str, shape: Optional[Tuple[int, int]] = None,
                     input_shapes: Optional[List[Tuple[int, ...]]] = None, batch: int = 1,
                     part: str = 'model', mode: str = 'tensor', pad: bool = True,
                     device: str = 'cpu', kwargs: Optional[Dict] = None,
                     cfg_options: Optional[Dict] = None) -> Measurable:
    """Dispatch on the kind of ``target`` (see module docstring)."""
    if is_config(target):
        if shape is None:
            raise ValueError('a config target needs --shape H W')
        from fusion_necks.utils.config import load_config
        cfg = load_config(target, cfg_options)
        import os.path as osp
        return from_config(cfg, shape, batch, part, mode, pad, device,
                           name=osp.splitext(osp.basename(target))[0])
    return from_callable(target, input_shapes or [], kwargs, device)
