"""Latency (median and spread over N runs after warm-up) and peak memory, CPU or CUDA.

    python tools/analysis/benchmark.py CONFIG [CONFIG ...] --shape H W [--runs 20] [--warmup 3]
           [--device cpu|cuda] [--part model|backbone|neck|decode_head] [--mode predict|tensor]
    python tools/analysis/benchmark.py pkg.module:Factory --inputs 1,3,512,512 [--kwargs JSON]
    python tools/analysis/benchmark.py CONFIG [CONFIG ...] --shape H W --backend torch onnxruntime

Several targets are timed **in alternation** in one process (A B A B ...), so their
ratio is robust to slow drifts of the machine; the first target is the reference
of the ratio column. Peak memory: the peak of tensor memory allocated during one
call (CUDA allocator statistics on GPU, torch.profiler allocation events on CPU;
see ``fusion_necks/analysis/measure.py``). ``--backward`` times
forward + backward of the sum of the outputs instead of inference. Inference
runs under ``torch.inference_mode``. ``--threads`` sets torch's CPU threads.
A ``pkg.module:callable`` target needs only PyTorch (for machines without mm*).
Throughput (images/s) is batch / median latency; the batch is ``--batch`` for a
config and the leading dimension of the first ``--inputs`` shape for a callable.

``--backend torch onnxruntime`` times every config target in PyTorch and as its ONNX
export in onnxruntime (``tensor`` mode, the graph of ``tools/deployment/pytorch2onnx.py``,
exported static at the benchmark size; as many onnxruntime intra-op threads as torch
threads), all alternating in one run; it prints the max abs difference of the two on the
benchmark input, the ratio of each target to the first one within each backend, and
onnxruntime / torch per target. Peak memory is given for the torch targets only (the
allocator method does not see onnxruntime's arena).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Latency and peak memory of models or modules')
    p.add_argument('targets', nargs='+', help="config files and/or 'pkg.module:callable'")
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'))
    p.add_argument('--inputs', nargs='+', default=[], metavar='SHAPE')
    p.add_argument('--kwargs', default='{}', help='JSON keyword arguments for callables')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--part', default='model', choices=('model', 'backbone', 'neck', 'decode_head'))
    p.add_argument('--mode', default=None, choices=('tensor', 'predict'),
                   help="--part model: 'predict' includes post-processing (default; "
                   "'tensor' with --backward, which needs tensor outputs)")
    p.add_argument('--no-pad', action='store_true')
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=None, help='torch.set_num_threads on CPU')
    p.add_argument('--backward', action='store_true', help='time forward + backward')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory pass')
    p.add_argument('--memory-method', default='allocator', choices=('allocator', 'rss'),
                   help="CPU peak memory: tensor allocations seen by torch.profiler "
                   "(default) or sampled process RSS")
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    p.add_argument('--json', default=None, help='write the results (with all samples) here')
    p.add_argument('--backend', nargs='+', default=['torch'], choices=BACKENDS,
                   help='time config targets in these backends (onnxruntime: the ONNX '
                   'export of the tensor mode)')
    p.add_argument('--onnx-dir', default=None,
                   help='keep the exported .onnx files here (default: a temporary directory)')
    p.add_argument('--opset', type=int, default=17, help='ONNX opset of the onnxruntime targets')
    args = p.parse_args(argv)
    if 'onnxruntime' in args.backend:
        bad = [t for t in args.targets if not t.endswith('.py')]
        if bad:
            p.error(f'--backend onnxruntime takes config targets only, got {bad}')
        if args.part != 'model' or args.backward or args.mode == 'predict':
            p.error('--backend onnxruntime times inference of the whole model in tensor mode: '
                    'use it without --part/--backward/--mode predict')
        args.mode = 'tensor'
    if len(set(args.backend)) != len(args.backend):
        p.error(f'--backend lists a backend twice: {args.backend}')
    return args


BACKENDS = ('torch', 'onnxruntime')


def _sum_outputs(out):
    import torch
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        total = 0
        for o in out:
            s = _sum_outputs(o)
            total = total + s if s is not None else total
        return total
    return None


def make_call(target, backward: bool):
    import torch
    fn, inputs, module = target.fn, target.inputs, target.module
    if not backward:
        def call():
            with torch.inference_mode():
                return fn(*inputs)
        return call
    module.train()

    def call_backward():
        module.zero_grad(set_to_none=True)
        loss = _sum_outputs(fn(*inputs))
        loss.backward()
    return call_backward


def backend_ratios(timings, names, backend_of, target_of) -> str:
    """Median ratios to the first target within each backend, and between backends."""
    backends = list(dict.fromkeys(backend_of[n] for n in names))
    targets = list(dict.fromkeys(target_of[n] for n in names))
    med = {(target_of[n], backend_of[n]): timings[n].median_ms for n in names}
    lines = []
    if len(targets) > 1:
        for b in backends:
            ref = med[targets[0], b]
            lines.append(f'ratio to {targets[0]} under {b}: ' + ', '.join(
                f'{t} {med[t, b] / ref:.3f}' for t in targets[1:]))
    for b in backends[1:]:
        lines.append(f'{b} / {backends[0]}: ' + ', '.join(
            f'{t} {med[t, b] / med[t, backends[0]]:.3f}' for t in targets))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.mode is None:
        args.mode = 'tensor' if args.backward else 'predict'
    elif args.backward and args.mode == 'predict' and args.part == 'model':
        raise SystemExit('error: --backward needs tensor outputs; use --mode tensor')
    import platform

    import torch

    from fusion_necks.analysis.measure import format_table, time_alternating
    from fusion_necks.analysis.model_inputs import build_measurable, parse_shape
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg_options = None
    if args.cfg_options:  # only config targets use them (and only then is mmengine needed)
        from fusion_necks.utils.config import parse_cfg_options
        cfg_options = parse_cfg_options(args.cfg_options)

    calls, descs, names, batches, backend_of, target_of = {}, {}, [], {}, {}, {}
    onnx_dir = args.onnx_dir or tempfile.mkdtemp(prefix='fusion_necks_onnx_')
    for ti, t in enumerate(args.targets):
        m = build_measurable(t, shape=tuple(args.shape) if args.shape else None,
                             input_shapes=[parse_shape(s) for s in args.inputs], batch=args.batch,
                             part=args.part, mode=args.mode, pad=not args.no_pad,
                             device=args.device, kwargs=json.loads(args.kwargs),
                             cfg_options=cfg_options)
        base = m.name if all(target_of[n] != m.name for n in names) else f'{m.name}#{ti}'
        # images per call: --batch for configs, the leading dim of a callable's first input
        first = m.inputs[0] if m.inputs else None
        batch = args.batch if t.endswith('.py') else (
            int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1)
        for backend in args.backend:
            name = base if len(args.backend) == 1 else f'{base} [{backend}]'
            if backend == 'onnxruntime':
                from fusion_necks.deployment.onnxruntime_target import onnxruntime_target
                target, diff = onnxruntime_target(
                    m, os.path.join(onnx_dir, f'{base.replace("#", "_")}.onnx'),
                    device=args.device, opset=args.opset)
                print(f'check  : {base}: onnxruntime vs torch max abs diff {diff:.3g}')
                calls[name] = make_call(target, False)
            else:
                calls[name] = make_call(m, args.backward)
            descs[name], batches[name] = m.input_desc, batch
            backend_of[name], target_of[name] = backend, base
            names.append(name)

    dev = args.device
    dev_desc = (torch.cuda.get_device_name(0) if dev.startswith('cuda')
                else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads')
    print(f'device : {dev} ({dev_desc}); torch {torch.__version__}')
    configs = any(t.endswith('.py') for t in args.targets)
    print(f'what   : {"forward+backward" if args.backward else "inference"}'
          + (f', part={args.part}' if configs else '')
          + (f', mode={args.mode}' if configs and args.part == 'model' else ''))
    for n in names:
        print(f'input  : {n}: {descs[n]}')
    print(f'runs   : {args.runs} after {args.warmup} warm-up, alternating {len(names)} target(s)\n')
    timings = time_alternating(calls, runs=args.runs, warmup=args.warmup, device=dev,
                               measure_memory=not args.no_memory,
                               memory_method=args.memory_method,
                               memory_for=[n for n in names if backend_of[n] == 'torch'])
    print(format_table([timings[n] for n in names], reference=names[0] if len(names) > 1 else None))
    if len(args.backend) > 1:
        print(backend_ratios(timings, names, backend_of, target_of))
    for n in names:
        print(f'throughput: {n}: {batches[n] * 1e3 / timings[n].median_ms:.2f} images/s '
              f'(batch {batches[n]} / median latency)')
    if args.json:
        out = dict(backends=args.backend, device=dev, device_desc=dev_desc, torch=torch.__version__, part=args.part,
                   mode=args.mode, backward=args.backward, runs=args.runs, warmup=args.warmup,
                   inputs=descs,
                   results=[dict(timings[n].as_dict(with_samples=True), batch=batches[n],
                                 images_per_s=batches[n] * 1e3 / timings[n].median_ms)
                            for n in names])
        for r, n in zip(out['results'], names):
            r.update(backend=backend_of[n], target=target_of[n])
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
