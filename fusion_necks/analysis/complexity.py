"""Parameter and FLOP counting for any ``nn.Module`` (PyTorch; mmengine optional).

**Convention: FLOPs are multiply-accumulates (MACs)**, as in OpenMMLab's
``get_flops`` and fvcore, which is what the FINE, ASFF and AutoFocusFormer papers
report. Two counters are available:

- ``'mmengine'``: ``mmengine.analysis.FlopAnalyzer`` (fvcore-style, traces the
  model with ``torch.jit``). Counts convolutions, linear layers, matmul/bmm/einsum,
  norms, interpolation, adaptive pooling, one MAC = one FLOP. We add a handle for
  ``scaled_dot_product_attention`` (its two matmuls, which upstream ignores);
  elementwise ops, softmax and max-pooling stay uncounted (listed as unsupported).
- ``'torch'``: ``torch.utils.flop_counter.FlopCounterMode``, which counts matmuls,
  convolutions and the attention kernels at 2 FLOPs per MAC; we divide by 2 so both
  counters report MACs. We add the formula for the CPU flash-attention kernel
  (``_scaled_dot_product_flash_attention_for_cpu``), which torch 2.13 does not
  count. It works without tracing, so data-dependent code (point tokens, top-k)
  is counted as executed.

Neither counts custom C++/CUDA ops (mmcv's RoIAlign, NMS).
"""
import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

BACKENDS = ('mmengine', 'torch')


@dataclass
class FlopCount:
    """MACs counted by one backend."""
    backend: str
    total: int
    by_module: Dict[str, int] = field(default_factory=dict)
    unsupported: Dict[str, int] = field(default_factory=dict)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        n += p.numel()
    return n


def parameters_by_module(model: nn.Module, depth: int = 1) -> Dict[str, int]:
    """Parameters grouped by module-name prefix of ``depth`` components."""
    out: Dict[str, int] = {}
    for name, p in model.named_parameters():
        key = '.'.join(name.split('.')[:depth]) if depth > 0 else ''
        out[key] = out.get(key, 0) + p.numel()
    return out


@contextlib.contextmanager
def _routed_forward(model: nn.Module, fn: Callable) -> Iterator[None]:
    """Make ``model(*inputs)`` run ``fn(*inputs)``.

    Both counters attribute work to sub-modules by entering the root module
    through ``__call__``; routing ``fn`` through the root's ``forward`` keeps the
    names relative to ``model`` (``backbone``, ``neck.fine.0``) for any entry
    point. ``fn`` must not call ``model(...)`` itself.
    """
    if fn is model:
        yield
        return
    original = model.forward
    model.forward = lambda *a: fn(*a)  # type: ignore[method-assign]
    try:
        yield
    finally:
        model.forward = original  # type: ignore[method-assign]


def sdpa_macs(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """MACs of softmax(Q K^T) V: ``B*H*L*S*E + B*H*L*S*Ev`` (shapes ``... x L x E``)."""
    *batch, length, e = q_shape
    s, ev = k_shape[-2], v_shape[-1]
    n = 1
    for b in batch:
        n *= int(b)
    return n * int(length) * int(s) * (int(e) + int(ev))


def _jit_sdpa_handle(inputs: List[Any], outputs: List[Any]) -> int:
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(x) for x in inputs[:3])
    return sdpa_macs(q, k, v)


def _mmengine_flops(fn: Callable, model: nn.Module, inputs: Tuple) -> FlopCount:
    from mmengine.analysis import FlopAnalyzer

    with _routed_forward(model, fn):
        analysis = FlopAnalyzer(model, inputs)
        analysis.set_op_handle('aten::scaled_dot_product_attention', _jit_sdpa_handle)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = int(analysis.total())
        by_module = {k: int(v) for k, v in analysis.by_module().items()}
        unsupported = {k: int(v) for k, v in analysis.unsupported_ops().items()}
    return FlopCount('mmengine', total, by_module, unsupported)


def _cpu_flash_attention_formulas() -> Dict[Any, Callable]:
    """FLOP formulas (2 per MAC, torch's unit) for the CPU flash-attention kernels."""
    aten = torch.ops.aten
    out: Dict[Any, Callable] = {}
    fwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    if fwd is not None:
        out[fwd] = lambda q, k, v, *args, out_shape=None, **kw: 2 * sdpa_macs(q, k, v)
    bwd = getattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward', None)
    if bwd is not None:
        # backward: dV, dP, dQ, dK (4 matmuls) plus the recomputed scores
        out[bwd] = lambda g, q, k, v, *args, out_shape=None, **kw: 5 * sdpa_macs(q, k, v)
    return out


def _torch_flops(fn: Callable, model: nn.Module, inputs: Tuple) -> FlopCount:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_cpu_flash_attention_formulas())
    with _routed_forward(model, fn), counter:
        model(*inputs)
    total = int(counter.get_total_flops()) // 2
    by_module: Dict[str, int] = {}
    root = type(model).__name__
    for name, ops in counter.get_flop_counts().items():
        if name == 'Global':
            continue
        # FlopCounterMode names modules '<RootClass>.<attr path>'
        key = '' if name == root else (name[len(root) + 1:] if name.startswith(root + '.') else name)
        by_module[key] = int(sum(ops.values())) // 2
    return FlopCount('torch', total, by_module, {})


def count_flops(model: nn.Module, inputs: Sequence[Any], fn: Optional[Callable] = None,
                backends: Sequence[str] = BACKENDS) -> Dict[str, FlopCount]:
    """Count MACs of ``fn(*inputs)`` (default ``model(*inputs)``) with each backend.

    ``fn`` lets a caller count another entry point (``partial(model.forward,
    mode='tensor')``, ``model.extract_feat``); it must not call ``model(...)``.

    Backends that are not installed (mmengine) or fail to trace the model are
    skipped; the failure is reported in ``FlopCount.unsupported['<error>']``.
    """
    from ..ops.nbhd_attention import cluster_schedule
    fn = fn or model
    inputs = tuple(inputs)
    out: Dict[str, FlopCount] = {}
    # the algorithm's count (M neighbours per query), not the inference schedule's
    with torch.no_grad(), cluster_schedule(False):
        for backend in backends:
            if backend not in BACKENDS:
                raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
            if backend == 'mmengine':
                try:
                    import mmengine.analysis  # noqa: F401
                except ImportError:
                    continue
                try:
                    out[backend] = _mmengine_flops(fn, model, inputs)
                except Exception as e:  # tracing can fail on exotic code; keep the other counter
                    out[backend] = FlopCount(backend, -1, {}, {f'<error> {type(e).__name__}: {e}': 1})
            else:
                out[backend] = _torch_flops(fn, model, inputs)
    return out


def module_total(by_module: Dict[str, int], name: str) -> int:
    """MACs of module ``name`` from a ``by_module`` table.

    A module that was never entered through ``__call__`` (e.g. a head whose
    ``forward`` calls ``self.forward_single`` per level) has no entry of its own in
    the torch counter's table; its total is then the sum over its outermost
    descendants that have one.
    """
    if name in by_module:
        return by_module[name]
    prefix = name + '.' if name else ''
    found = [k for k in by_module if k.startswith(prefix) and k != name]
    outermost = [k for k in found
                 if not any(o != k and k.startswith(o + '.') for o in found)]
    return sum(by_module[k] for k in outermost)


def module_subtotals(by_module: Dict[str, int], names: Sequence[str]) -> Dict[str, int]:
    """:func:`module_total` of each of ``names``."""
    return {n: module_total(by_module, n) for n in names}


def find_modules(model: nn.Module, cls_or_name) -> List[str]:
    """Names of sub-modules that are instances of a class (or whose class has that name)."""
    out = []
    for name, m in model.named_modules():
        if (isinstance(cls_or_name, str) and type(m).__name__ == cls_or_name) or \
                (isinstance(cls_or_name, type) and isinstance(m, cls_or_name)):
            out.append(name)
    return out


def human(n: float, unit: str = '') -> str:
    """1234567 -> '1.235 M' (G, M, K)."""
    for div, suffix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.3f} {suffix}{unit}'
    return f'{n:.0f} {unit}'.strip()


__all__ = ['FlopCount', 'count_parameters', 'parameters_by_module', 'count_flops',
           'module_subtotals', 'module_total', 'find_modules', 'human']
