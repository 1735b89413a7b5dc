"""Op-level A/B timing: today's op against the implementation it replaced, alternating.

    python tools/analysis/benchmark_ops.py CASE [CASE ...] --compare-reference
        [--runs 10] [--warmup 2] [--threads 2] [--json F] [--profile 10]
    python tools/analysis/benchmark_ops.py --list

A case is a set of calls of one op with fixed inputs. With ``--compare-reference`` each
case is timed twice, with the library's op and with the *reference*: the implementation
before an optimisation, kept verbatim under ``tools/analysis/op_references/`` (not in the
library). The two are called alternately (A B A B ...; ``fusion_necks.analysis.measure``),
their outputs are compared before timing (kNN: identical neighbour indices and
distances), and the ratio of the medians is printed. ``--profile N`` prints the top N
ops of ``torch.profiler`` for each side.

Cases (``--list``):

- ``knn-aff-tiny-512x512``: every ``ops.knn`` call of the AutoFocusFormer-Tiny backbone
  on one 512x512 image (random init; the calls are recorded during one forward pass and
  replayed with the same positions), the first one being stage 1's 16,384 tokens
  against their cluster means;
- ``knn-aff-tiny-m2f-512x1024`` / ``knn-aff-tiny-m2f-1024x2048``: the same for AFF-Tiny +
  point Mask2Former (backbone and pixel decoder, the Cityscapes config) at those inputs;
- ``knn:NQxND:K``: one synthetic call, ``NQ`` queries on an integer grid (many ties)
  against ``ND`` random positions on the same canvas, ``K`` neighbours;
- ``nbhd-aff-tiny-512x1024`` / ``nbhd-aff-tiny-1024x2048`` (any ``HxW``): every neighbourhood
  attention call of the AutoFocusFormer-Tiny backbone's blocks on one image (recorded
  during one forward, replayed with the same q, k, v, neighbourhoods and bias) with the
  per-cluster gather (``cluster_size``, what the stages use at inference); the reference
  is the general per-query op (``ops.nbhd_attention`` without ``cluster_size``, which
  training uses), outputs checked within 1e-5 relative;
- ``fine-r50-k1`` / ``fine-r50-k2``: FINE (C = 256, paper defaults) forward at the two
  Faster R-CNN R-50 stages of an 800x1344 input (low 50x84 / high 25x42 with k = 1; low
  100x168 / high 50x84 with k = 2), batch 1; ``fine-r50-train``: one training step
  (forward + backward of the sum of the outputs, inputs requiring grad) of both stages at
  batch 2, with a dense random upstream gradient. ``--compare-reference`` times the FINE
  before ``fusion_necks/layers/block_ops.py`` (``op_references/fine_v1.py``, the same
  weights; outputs, or all gradients for the training step, checked within 1e-5 relative);
  without it, the second target is the same FINE with ``attention='aats_linear'`` (the
  public code's linear kernel), which shows what the softmax attention costs.
  ``--fine-reference v2`` compares against the block ops before
  ``block_ops.pool_and_modulate`` instead (``op_references/fine_v2.py``: pooling and
  modulation as two autograd functions whose gradients of ``F_low`` autograd adds).

Only PyTorch is needed except for the ``m2f`` cases, which build the model from its
mmseg config.
"""
import argparse
import importlib
import importlib.util
import json
import math
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, Tuple

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

REFERENCES = osp.join(osp.dirname(osp.abspath(__file__)), 'op_references')
M2F_TINY = 'configs/autofocusformer/mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py'
# modules that call ops.knn (each imported the function by name)
KNN_CALLERS = ('fusion_necks.backbones.aff_stage', 'fusion_necks.backbones.aff_downsample',
               'fusion_necks.layers.point.point_conv',
               'fusion_necks.layers.point.point_neighbour_search',
               'fusion_necks.layers.point.point_pixel_decoder',
               'fusion_necks.ops.inverse_distance')
NAMED_CASES = {
    'knn-aff-tiny-512x512': 'AFF-Tiny backbone, 512x512: all ops.knn calls (stage 1 first)',
    'knn-aff-tiny-m2f-512x1024': 'AFF-Tiny + point Mask2Former, 512x1024: all ops.knn calls',
    'knn-aff-tiny-m2f-1024x2048': 'AFF-Tiny + point Mask2Former, 1024x2048: all ops.knn calls',
    'knn:NQxND:K': 'one synthetic call: NQ grid queries, ND random positions, K neighbours',
    'nbhd-aff-tiny-512x1024': 'AFF-Tiny backbone, 512x1024: every block attention (inference)',
    'nbhd-aff-tiny-1024x2048': 'AFF-Tiny backbone, 1024x2048: every block attention (inference)',
    'fine-r50-k1': 'FINE forward, low 50x84 / high 25x42, k=1, C=256, batch 1',
    'fine-r50-k2': 'FINE forward, low 100x168 / high 50x84, k=2, C=256, batch 1',
    'fine-r50-train': 'FINE training step of both stages, batch 2',
}
FINE_STAGES = {'k1': (1, (50, 84), (25, 42)), 'k2': (2, (100, 168), (50, 84))}


FINE_REFERENCES = {'v1': 'before block_ops (op_references/fine_v1.py)',
                   'v2': 'block_ops before pool_and_modulate (op_references/fine_v2.py)'}


def fine_case(case: str, compare_reference: bool,
              reference: str = 'v1') -> Tuple[Dict[str, Callable], Dict]:
    """FINE (paper defaults) from the library, the reference before block_ops (same
    weights), and the public code's linear kernel for context."""
    import torch
    from torch import nn

    from fusion_necks.layers.fine import FINE
    train = case == 'fine-r50-train'
    stages = list(FINE_STAGES) if train else [case.rsplit('-', 1)[1]]
    batch = 2 if train else 1
    g = torch.Generator().manual_seed(0)
    inputs, grads, info = {}, {}, {'calls': []}
    for st in stages:
        k, low, high = FINE_STAGES[st]
        inputs[st] = (torch.randn(batch, 256, *low, generator=g, requires_grad=train),
                      torch.randn(batch, 256, *high, generator=g, requires_grad=train))
        # a dense upstream gradient, as from the FPN conv that follows
        grads[st] = torch.randn(batch, 256, *low, generator=g)
        info['calls'].append(f'{st}: low {tuple(inputs[st][0].shape)}, '
                             f'high {tuple(inputs[st][1].shape)}, kernel_size={k}')

    def build(cls, attention='aats'):
        torch.manual_seed(0)
        mods = {st: cls(256, kernel_size=FINE_STAGES[st][0], attention=attention)
                for st in stages}
        for m in mods.values():  # a trained W_O is not zero: keep the full data path busy
            nn.init.xavier_uniform_(m.attn.out_proj.weight)
        return mods

    def run(mods, keep=False):
        if not train:
            with torch.inference_mode():
                return [m(*inputs[st]) for st, m in mods.items()]
        for st, m in mods.items():
            m.zero_grad(set_to_none=True)
        for x in (t for pair in inputs.values() for t in pair):
            x.grad = None
        outs = [m(*inputs[st]) for st, m in mods.items()]
        torch.autograd.backward(outs, [grads[st] for st in mods])
        if keep:
            return [x.grad.clone() for pair in inputs.values() for x in pair] + [
                p.grad.clone() for m in mods.values() for p in m.parameters()]

    targets = {'FINE (paper: AATS, softmax)': build(FINE)}
    if compare_reference:
        ref_cls = getattr(load_reference(f'fine_{reference}'), f'FINE{reference}')
        ref = build(ref_cls)
        for st in stages:
            ref[st].load_state_dict(targets['FINE (paper: AATS, softmax)'][st].state_dict())
        a, b = run(targets['FINE (paper: AATS, softmax)'], keep=True), run(ref, keep=True)
        worst = max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-12))
                    for x, y in zip(a, b))
        if not worst <= 1e-5:
            raise AssertionError(f'{case}: FINE and the reference differ by {worst:.3g} '
                                 f'(relative to the largest value)')
        info['check'] = (f'{"outputs" if not train else "input and parameter gradients"} '
                         f'within {worst:.2g} of the reference (relative to the max)')
        targets[f'reference FINE {reference}'] = ref
    else:
        targets['FINE aats_linear (public kernel)'] = build(FINE, 'aats_linear')
    fns = {label: (lambda mods=mods: run(mods)) for label, mods in targets.items()}
    return fns, info


def load_reference(name: str):
    """``tools/analysis/op_references/<name>.py`` as a module."""
    path = osp.join(REFERENCES, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'op_reference_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def record_knn_calls(run: Callable[[], object]) -> List[Tuple]:
    """Run ``run()`` once with ``ops.knn`` wrapped; returns ``[(args, kwargs), ...]``."""
    knn_module = importlib.import_module('fusion_necks.ops.knn')
    original = knn_module.knn
    calls = []

    def recording(*args, **kwargs):
        calls.append((tuple(a.clone() if hasattr(a, 'clone') else a for a in args),
                      dict(kwargs)))
        return original(*args, **kwargs)

    patched = [importlib.import_module(m) for m in KNN_CALLERS]
    for m in patched:
        m.knn = recording
    try:
        run()
    finally:
        for m in patched:
            m.knn = original
    return calls


def _knn_calls(case: str) -> List[Tuple]:
    import torch
    if case.startswith('knn:'):
        try:
            sizes, k = case[4:].split(':')
            nq, nd = (int(s) for s in sizes.split('x'))
            k = int(k)
        except ValueError:
            raise SystemExit(f"error: a synthetic case is 'knn:NQxND:K', got {case!r}")
        side = max(1, int(math.ceil(math.sqrt(nq))))
        g = torch.Generator().manual_seed(0)
        yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
        q = torch.stack((yy, xx), -1).reshape(1, -1, 2)[:, :nq].float()
        db = torch.rand(1, nd, 2, generator=g) * side
        return [((q, db, k), {})]
    if case == 'knn-aff-tiny-512x512':
        from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet
        torch.manual_seed(0)
        model = AutoFocusFormerNet(arch='tiny').eval()
        x = torch.randn(1, 3, 512, 512)
    elif case.startswith('knn-aff-tiny-m2f-'):
        from fusion_necks.analysis.model_inputs import build_measurable
        h, w = (int(s) for s in case.rsplit('-', 1)[1].split('x'))
        torch.manual_seed(0)
        m = build_measurable(osp.join(ROOT, M2F_TINY), shape=(h, w), mode='predict')
        return record_knn_calls(lambda: _no_grad(m.fn, *m.inputs))
    else:
        raise SystemExit(f'error: unknown case {case!r}; --list shows the cases')
    return record_knn_calls(lambda: _no_grad(model, x))


def _nbhd_calls(case: str) -> List[Tuple]:
    """``(args, kwargs)`` of every block's ``nbhd_attention`` call in one AFF-Tiny forward."""
    import torch

    from fusion_necks.backbones import aff_attention
    from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet
    try:
        h, w = (int(s) for s in case.rsplit('-', 1)[1].split('x'))
    except ValueError:
        raise SystemExit(f"error: the attention case is 'nbhd-aff-tiny-HxW', got {case!r}")
    torch.manual_seed(0)
    model = AutoFocusFormerNet(arch='tiny').eval()
    original, calls = aff_attention.nbhd_attention, []

    def recording(*args, **kwargs):
        calls.append((args, dict(kwargs)))
        return original(*args, **kwargs)

    aff_attention.nbhd_attention = recording
    try:
        _no_grad(model, torch.randn(1, 3, h, w))
    finally:
        aff_attention.nbhd_attention = original
    return calls


def nbhd_case(case: str, compare_reference: bool) -> Tuple[Dict[str, Callable], Dict]:
    """Per-cluster gather (library, inference) against the general per-query op."""
    import torch

    from fusion_necks.ops.nbhd_attention import nbhd_attention
    calls = [c for c in _nbhd_calls(case) if c[1].get('cluster_size')]
    if not calls:
        raise SystemExit(f'error: case {case} made no clustered attention call')
    info = {'calls': [f"q {tuple(a[0].shape)}, M={a[3].shape[-1]}, "
                      f"cluster_size={kw['cluster_size']}" for a, kw in calls]}
    general = [(a, {k: v for k, v in kw.items() if k != 'cluster_size'}) for a, kw in calls]

    def replay(cs):
        def run():
            with torch.inference_mode():
                for args, kwargs in cs:
                    nbhd_attention(*args, **kwargs)
        return run

    fns = {'nbhd_attention, per-cluster gather': replay(calls)}
    if compare_reference:
        with torch.inference_mode():
            worst = max(float((nbhd_attention(*a, **kw) - nbhd_attention(*ga, **gkw)).abs().max()
                              / nbhd_attention(*ga, **gkw).abs().max())
                        for (a, kw), (ga, gkw) in zip(calls, general))
        if not worst <= 1e-5:
            raise AssertionError(f'{case}: the two schedules differ by {worst:.3g} (relative)')
        info['check'] = f'outputs within {worst:.2g} of the general op (relative to the max)'
        fns['nbhd_attention, per-query gather'] = replay(general)
    return fns, info


def _no_grad(fn, *args):
    import torch
    with torch.inference_mode():
        return fn(*args)


def knn_case(case: str, compare_reference: bool) -> Tuple[Dict[str, Callable], Dict]:
    """Timed callables (library, reference) for a kNN case, and what was checked."""
    import torch
    from fusion_necks.ops.knn import knn
    calls = _knn_calls(case)
    if not calls:
        raise SystemExit(f'error: case {case} made no ops.knn call')
    info = {'calls': [f"{tuple(a[0].shape)} -> {tuple(a[1].shape)}, k={a[2]}"
                      for a, _ in calls]}

    def replay(fn):
        def run():
            for args, kwargs in calls:
                fn(*args, **kwargs)
        return run

    fns = {'ops.knn': replay(knn)}
    if compare_reference:
        ref = load_reference('knn_v1').knn
        for args, kwargs in calls:
            (d0, i0), (d1, i1) = knn(*args, **kwargs), ref(*args, **kwargs)
            if not (torch.equal(i0, i1) and torch.equal(d0, d1)):
                raise AssertionError(f'{case}: ops.knn and the reference differ on a call '
                                     f'with query {tuple(args[0].shape)}')
        info['check'] = f'identical indices and distances on all {len(calls)} calls'
        fns['reference knn_v1'] = replay(ref)
    return fns, info


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('cases', nargs='*')
    p.add_argument('--list', action='store_true', help='list the cases')
    p.add_argument('--compare-reference', action='store_true',
                   help='also time the reference implementation, alternating')
    p.add_argument('--fine-reference', choices=sorted(FINE_REFERENCES), default='v1',
                   help='reference of the fine-* cases: ' + '; '.join(
                       f'{k}: {v}' for k, v in FINE_REFERENCES.items()))
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='print the top N torch.profiler ops of each side')
    p.add_argument('--json', default=None)
    args = p.parse_args(argv)
    if not args.list and not args.cases:
        p.error('give at least one case (--list shows them)')
    return args


def profile_table(fn: Callable, top: int) -> str:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=top)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, desc in NAMED_CASES.items():
            print(f'{name:28s} {desc}')
        return 0
    import torch

    from fusion_necks.analysis.measure import format_table, time_alternating
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; '
          f'{args.runs} runs after {args.warmup} warm-up, alternating')
    results = {}
    for case in args.cases:
        if case in ('fine-r50-k1', 'fine-r50-k2', 'fine-r50-train'):
            fns, info = fine_case(case, args.compare_reference, args.fine_reference)
        elif case.startswith('knn'):
            fns, info = knn_case(case, args.compare_reference)
        elif case.startswith('nbhd-aff-tiny-'):
            fns, info = nbhd_case(case, args.compare_reference)
        else:
            raise SystemExit(f'error: unknown case {case!r}; --list shows the cases')
        print(f'\n== {case}: {len(info["calls"])} call(s)')
        for c in info['calls'][:8]:
            print(f'   {c}')
        if len(info['calls']) > 8:
            print(f'   ... {len(info["calls"]) - 8} more')
        if 'check' in info:
            print(f'   check: {info["check"]}')
        timings = time_alternating(fns, runs=args.runs, warmup=args.warmup,
                                   measure_memory=True)
        names = list(fns)
        ref = names[-1] if len(names) > 1 else None
        print(format_table([timings[n] for n in names], reference=ref))
        if ref and 'check' in info:
            print(f'   speed-up over the reference: '
                  f'{timings[ref].median_ms / timings[names[0]].median_ms:.2f}x')
        if args.profile:
            for n in names:
                print(f'\n-- profile: {n}\n{profile_table(fns[n], args.profile)}')
        results[case] = dict(info, results=[timings[n].as_dict(with_samples=True)
                                            for n in names])
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)) or '.', exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(torch=torch.__version__, threads=torch.get_num_threads(),
                           runs=args.runs, warmup=args.warmup, cases=results), f, indent=2)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
