"""Parameters and FLOPs of a model from a config (no dataset needed), or of any module.

    python tools/analysis/get_flops.py CONFIG --shape H W [--part model|backbone|neck|decode_head]
    python tools/analysis/get_flops.py pkg.module:Factory --inputs 1,256,100,168 [--kwargs JSON]

FLOPs are multiply-accumulates (MACs, 1 MAC = 1 FLOP), the convention of
OpenMMLab's get_flops, fvcore and the papers we compare with; the 2x figure
(one multiply + one add) is printed alongside. Two counters are reported (see
``fusion_necks/analysis/complexity.py``): mmengine's fvcore-style tracer, which
ignores attention (``scaled_dot_product_attention``), and PyTorch's
FlopCounterMode, which counts it. Custom mmcv ops (RoIAlign, NMS) count 0 in both.
The input is padded like the model's data preprocessor pads (``--no-pad`` to
disable), e.g. 800x1333 -> 800x1344 for detectors.

``--by-module N`` prints the per-module breakdown to depth N; ``--match STR``
prints only modules whose name or class contains STR (e.g. ``--match fine``);
``--json FILE`` writes everything machine-readable.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Count parameters and FLOPs (MACs)')
    p.add_argument('target', help="config file, or 'pkg.module:callable' returning an nn.Module")
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                   help='input image size for a config target')
    p.add_argument('--inputs', nargs='+', default=[], metavar='SHAPE',
                   help="input tensor shapes for a 'pkg.module:callable' target, e.g. 1,3,224,224")
    p.add_argument('--kwargs', default='{}', help="JSON keyword arguments for the callable")
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--part', default='model', choices=('model', 'backbone', 'neck', 'decode_head'))
    p.add_argument('--mode', default='tensor', choices=('tensor', 'predict'),
                   help="model forward mode for --part model (default 'tensor': no post-processing)")
    p.add_argument('--no-pad', action='store_true', help='do not pad to the pad_size_divisor')
    p.add_argument('--backend', nargs='+', default=['mmengine', 'torch'], choices=('mmengine', 'torch'))
    p.add_argument('--by-module', type=int, default=1, metavar='DEPTH',
                   help='breakdown depth (0: totals only)')
    p.add_argument('--match', default=None, help='only list modules whose name/class contains this')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    p.add_argument('--json', default=None, help='write the results to this JSON file')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from fusion_necks.analysis.complexity import (count_flops, count_parameters, human,
                                                  module_total, parameters_by_module)
    from fusion_necks.analysis.model_inputs import build_measurable, parse_shape
    from fusion_necks.utils.config import parse_cfg_options

    target = build_measurable(
        args.target, shape=tuple(args.shape) if args.shape else None,
        input_shapes=[parse_shape(s) for s in args.inputs], batch=args.batch, part=args.part,
        mode=args.mode, pad=not args.no_pad, kwargs=json.loads(args.kwargs),
        cfg_options=parse_cfg_options(args.cfg_options))
    module = target.module
    params = count_parameters(module)
    flops = count_flops(module, target.inputs, fn=target.fn, backends=args.backend)

    print(f'target   : {args.target} [{target.name}]')
    print(f'input    : {target.input_desc}')
    print(f'params   : {params:,} ({human(params)})')
    for backend, fc in flops.items():
        if fc.total < 0:
            print(f'FLOPs    : [{backend}] failed: {next(iter(fc.unsupported))}')
            continue
        print(f'FLOPs    : [{backend}] {human(fc.total)} MACs  (= {human(2 * fc.total)} '
              'FLOPs counting multiply and add separately)')
        if fc.unsupported:
            ops = ', '.join(f'{k} x{v}' for k, v in sorted(fc.unsupported.items()))
            print(f'           [{backend}] not counted: {ops}')

    names = {n: type(m).__name__ for n, m in module.named_modules()}
    rows = []
    pbm = {}
    for name in names:
        if name == '':
            continue
        depth = name.count('.') + 1
        matched = args.match and (args.match.lower() in name.lower()
                                  or args.match.lower() in names[name].lower())
        if (args.match and matched) or (not args.match and depth <= args.by_module):
            rows.append(name)
    if rows:
        for name, p in module.named_parameters():
            for r in rows:
                if name.startswith(r + '.'):
                    pbm[r] = pbm.get(r, 0) + p.numel()
        header = f"{'module':50s} {'class':24s} {'params':>12s}" + ''.join(
            f' {b + " MACs":>16s}' for b in flops)
        print('\n' + header + '\n' + '-' * len(header))
        for r in rows:
            line = f'{r[:50]:50s} {names[r][:24]:24s} {pbm.get(r, 0):12,d}'
            for fc in flops.values():
                line += f' {human(module_total(fc.by_module, r)):>16s}'
            print(line)
    if args.json:
        out = dict(target=args.target, name=target.name, input=target.input_desc, params=params,
                   params_by_module=parameters_by_module(module, max(args.by_module, 1)),
                   convention='MACs (1 multiply-accumulate = 1 FLOP)',
                   flops={b: dict(total=fc.total, unsupported=fc.unsupported,
                                  by_module={r: module_total(fc.by_module, r) for r in rows})
                          for b, fc in flops.items()})
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
