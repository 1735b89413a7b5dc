"""Latency (median and spread over N runs after warm-up) and peak memory, CPU or CUDA.

    python tools/analysis/benchmark.py CONFIG [CONFIG ...] --shape H W [--runs 20] [--warmup 3]
           [--device cpu|cuda] [--part model|backbone|neck|decode_head] [--mode predict|tensor]
    python tools/analysis/benchmark.py pkg.module:Factory --inputs 1,3,512,512 [--kwargs JSON]

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
"""
import argparse
import json
import os
import sys

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
    return p.parse_args(argv)


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

    calls, descs, names, batches = {}, {}, [], {}
    for t in args.targets:
        m = build_measurable(t, shape=tuple(args.shape) if args.shape else None,
                             input_shapes=[parse_shape(s) for s in args.inputs], batch=args.batch,
                             part=args.part, mode=args.mode, pad=not args.no_pad,
                             device=args.device, kwargs=json.loads(args.kwargs),
                             cfg_options=cfg_options)
        name = m.name if m.name not in calls else f'{m.name}#{len(calls)}'
        calls[name] = make_call(m, args.backward)
        descs[name] = m.input_desc
        names.append(name)
        # images per call: --batch for configs, the leading dim of a callable's first input
        first = m.inputs[0] if m.inputs else None
        batches[name] = args.batch if t.endswith('.py') else (
            int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1)

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
                               memory_method=args.memory_method)
    print(format_table([timings[n] for n in names], reference=names[0] if len(names) > 1 else None))
    for n in names:
        print(f'throughput: {n}: {batches[n] * 1e3 / timings[n].median_ms:.2f} images/s '
              f'(batch {batches[n]} / median latency)')
    if args.json:
        out = dict(device=dev, device_desc=dev_desc, torch=torch.__version__, part=args.part,
                   mode=args.mode, backward=args.backward, runs=args.runs, warmup=args.warmup,
                   inputs=descs,
                   results=[dict(timings[n].as_dict(with_samples=True), batch=batches[n],
                                 images_per_s=batches[n] * 1e3 / timings[n].median_ms)
                            for n in names])
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
