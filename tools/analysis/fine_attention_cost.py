"""FLOPs and peak memory of the FINE modules per attention strategy (FINE paper, Table 3).

    python tools/analysis/fine_attention_cost.py [--shape 800 1333] [--runs 0] [--json F]
           [--config configs/fine/faster-rcnn_r50_fpn-fine_1x_coco.py]
           [--attentions aats vanilla window area linear]

The FINE blocks of the main config's neck and of its Table 3 ablation configs
(``<config stem>-<attention>`` in ``configs/fine/``: one key changed each) are built
and fed the real inputs of each FINE stage: ``(F_low, F_high)`` as the main model's
backbone and neck compute them for one random ``--shape`` image (padded like the data
preprocessor, 800x1333 -> 800x1344). Per stage and per variant:

- **MACs** of the block (``fusion_necks.analysis.count_flops``, 1 MAC = 1 FLOP; both
  attention matmuls are counted, softmax and elementwise ops are not);
- **peak memory**: the peak of tensor memory allocated during one inference call of the
  block above what was allocated before it (``PeakMemory``: torch.profiler allocation
  events on the CPU, the allocator statistics on CUDA). It includes the block's output
  (``B x C x H x W`` like ``F_low``), which every variant allocates; that size is listed
  (``out``), and ``work = peak - out`` is what the attention itself needs on top.

"vanilla" is measured twice, because the attention kernel decides its memory:

- ``vanilla``: the module as built, ``F.scaled_dot_product_attention``; PyTorch picks
  a fused (flash) kernel that never materialises the ``N_low x N_high`` matrix;
- ``vanilla-dense``: the same module with SDPA restricted to its math backend
  (``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``), i.e. ``softmax(Q K^T /
  sqrt(d)) V`` with the score matrix materialised, as the paper's vanilla attention
  [52] computes it (its +1223 MB in Table 3 is the size of two such fp32 matrices at
  RT-DETR's 640x640). A stage whose two score matrices (``2 x heads x N_low x N_high``
  floats) exceed 80% of the available memory is not run: its peak is reported as that
  lower bound (``>=``) and its MACs are counted on the meta device (shapes only).

The totals row of each variant: MACs summed over the stages, peak memory the maximum
over the stages (they run one after the other). Savings of AATS are ``1 - AATS /
other``. ``--runs N`` also times each block (median of N alternating calls).
"""
import argparse
import contextlib
import copy
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

MAIN = 'configs/fine/faster-rcnn_r50_fpn-fine_1x_coco.py'
ATTENTIONS = ('aats', 'vanilla', 'window', 'area', 'linear')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='FINE attention strategies: FLOPs and peak memory')
    p.add_argument('--config', default=MAIN, help='the main FINE config; its ablations '
                   '<stem>-<attention><suffix> must sit next to it')
    p.add_argument('--shape', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    p.add_argument('--attentions', nargs='+', default=list(ATTENTIONS), choices=ATTENTIONS)
    p.add_argument('--no-dense', action='store_true',
                   help='skip vanilla-dense (it allocates N_low x N_high x heads floats)')
    p.add_argument('--backend', nargs='+', default=['torch'], choices=('mmengine', 'torch'))
    p.add_argument('--runs', type=int, default=0, help='also time each block (0: no timing)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None)
    return p.parse_args(argv)


def variant_config(main: str, attention: str) -> str:
    """``.../faster-rcnn_r50_fpn-fine_1x_coco.py`` -> ``...-fine-<attention>_1x_coco.py``."""
    if attention == 'aats':
        return main
    head, tail = osp.basename(main).split('-fine', 1)
    path = osp.join(osp.dirname(main), f'{head}-fine-{attention}{tail}')
    if not osp.isfile(path):
        raise SystemExit(f'error: no ablation config for attention={attention!r}: {path}')
    return path


def available_memory():
    """MemAvailable of /proc/meminfo in bytes (None where there is none)."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fine_inputs(model, shape, device):
    """``{stage name: (F_low, F_high)}`` of the neck's FINE blocks on one random image."""
    import torch

    from fusion_necks.analysis.model_inputs import padded_shape
    h, w = padded_shape(model.cfg, *shape)
    captured = {}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, name=name: captured.__setitem__(name, tuple(a.clone() for a in args)))
        for name, layer in model.neck.fine_layers.items()]
    with torch.inference_mode():
        model.neck(model.backbone(torch.randn(1, 3, h, w, device=device)))
    for hk in hooks:
        hk.remove()
    return captured, (h, w)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import ConfigDict
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from fusion_necks.analysis.complexity import count_flops, count_parameters
    from fusion_necks.analysis.measure import PeakMemory, time_alternating
    from fusion_necks.compat import apply_config_compat
    from fusion_necks.utils.config import build_model, detect_scope, load_config

    def load(path):
        cfg = load_config(path)
        apply_config_compat(cfg, offline=True)
        return cfg

    # the whole model of the main config gives the FINE inputs; the ablations need
    # only their neck (the FINE blocks), built from their own config
    cfg = load(args.config)
    main_model = build_model(cfg, detect_scope(cfg)).to(args.device).eval()
    main_model.cfg = cfg
    inputs, padded = fine_inputs(main_model, args.shape, args.device)

    def fine_blocks(path):
        vcfg = load(path)
        neck = build_model(ConfigDict(model=vcfg.model.neck), detect_scope(vcfg))
        return neck.to(args.device).eval().fine_layers

    variants = []  # (label, config, blocks, sdpa context)
    for att in args.attentions:
        path = variant_config(args.config, att)
        blocks = main_model.neck.fine_layers if att == 'aats' else fine_blocks(path)
        variants.append((att, path, blocks, contextlib.nullcontext))
        if att == 'vanilla' and not args.no_dense:
            variants.append(('vanilla-dense', path, blocks,
                             lambda: sdpa_kernel(SDPBackend.MATH)))

    results = {}
    for label, path, blocks, ctx in variants:
        per_stage, calls = {}, {}
        for stage, block in blocks.items():
            low, high = inputs[stage]
            assert block.attention == (label.split('-')[0]), (label, block)
            row = dict(low=list(low.shape), high=list(high.shape), params=count_parameters(block),
                       output_mib=low.numel() * low.element_size() / 2 ** 20)
            if label == 'vanilla-dense':
                # the math backend holds the scores and their softmax at once:
                # 2 x heads x N_low x N_high floats, a lower bound of its peak
                need = (2 * block.num_heads * low[0, 0].numel() * high[0, 0].numel()
                        * low.element_size())
                avail = available_memory() if args.device == 'cpu' else None
                if avail is not None and need > 0.8 * avail:
                    # not run: FLOPs on the meta device (shapes only), memory bound only
                    with ctx():
                        flops = count_flops(copy.deepcopy(block).to('meta'),
                                            (low.to('meta'), high.to('meta')), backends=['torch'])
                    row.update(macs={b: flops['torch'].total if b == 'torch' else None
                                     for b in args.backend},
                               peak_mib=need / 2 ** 20, work_mib=need / 2 ** 20, lower_bound=True,
                               skipped=f'not run: needs >= {need / 2 ** 20:,.0f} MiB for the '
                                       f'score matrices, {avail / 2 ** 20:,.0f} MiB available')
                    per_stage[stage] = row
                    continue
            with ctx():
                flops = count_flops(block, (low, high), backends=args.backend)
                with torch.inference_mode(), PeakMemory(args.device) as pm:
                    out = block(low, high)
            assert out.shape == low.shape
            row.update(macs={b: fc.total for b, fc in flops.items()}, peak_mib=pm.peak_mib,
                       work_mib=pm.peak_mib - row['output_mib'], lower_bound=False)
            per_stage[stage] = row
            del out

            def call(block=block, low=low, high=high, ctx=ctx):
                with ctx(), torch.inference_mode():
                    return block(low, high)
            calls[stage] = call
        if args.runs and calls:
            t = time_alternating(calls, runs=args.runs, warmup=1, device=args.device,
                                 measure_memory=False)
            for stage in calls:
                per_stage[stage]['median_ms'] = t[stage].median_ms

        def tot(key, b=None):
            vals = [s[key][b] if b else s[key] for s in per_stage.values()]
            return None if any(v is None for v in vals) else sum(vals)
        total = dict(
            macs={b: tot('macs', b) for b in args.backend},
            peak_mib=max(s['peak_mib'] for s in per_stage.values()),
            work_mib=max(s['work_mib'] for s in per_stage.values()),
            lower_bound=any(s['lower_bound'] for s in per_stage.values()),
            params=sum(s['params'] for s in per_stage.values()))
        if args.runs and all('median_ms' in s for s in per_stage.values()):
            total['median_ms'] = sum(s['median_ms'] for s in per_stage.values())
        results[label] = dict(config=path, stages=per_stage, total=total)

    b0 = args.backend[0]
    print(f'FINE blocks of {args.config} and its attention ablations, input 1x3x'
          f'{padded[0]}x{padded[1]} (from {args.shape[0]}x{args.shape[1]}), {args.device}, '
          f'torch {torch.__version__}, {torch.get_num_threads()} thread(s)')
    print('MACs: 1 multiply-accumulate = 1 FLOP; peak: tensor memory allocated during the '
          'call, including the output (out); work = peak - out; >= : lower bound, not run\n')
    head = (f"{'attention':14s} {'stage':7s} {'F_low':>14s} {'F_high':>14s} {'params':>9s} "
            f"{'GMACs':>8s} {'peak MiB':>10s} {'work MiB':>10s} {'out MiB':>8s}"
            + ('  median ms' if args.runs else ''))

    def mib(v, bound):
        return ('>=' if bound else '') + f'{v:.1f}'
    print(head + '\n' + '-' * len(head))
    for label, r in results.items():
        for stage, s in sorted(r['stages'].items(), reverse=True):
            line = (f"{label:14s} {stage:7s} {'x'.join(map(str, s['low'][1:])):>14s} "
                    f"{'x'.join(map(str, s['high'][1:])):>14s} {s['params']:9,d} "
                    f"{s['macs'][b0] / 1e9:8.3f} {mib(s['peak_mib'], s['lower_bound']):>10s} "
                    f"{mib(s['work_mib'], s['lower_bound']):>10s} {s['output_mib']:8.1f}")
            if 'median_ms' in s:
                line += f"  {s['median_ms']:9.1f}"
            print(line)
            if 'skipped' in s:
                print(f"{'':23s}({s['skipped']}; MACs counted on the meta device)")
        t = r['total']
        line = (f"{label:14s} {'total':7s} {'':14s} {'':14s} {t['params']:9,d} "
                f"{t['macs'][b0] / 1e9:8.3f} {mib(t['peak_mib'], t['lower_bound']):>10s} "
                f"{mib(t['work_mib'], t['lower_bound']):>10s} {'':8s}")
        if 'median_ms' in t:
            line += f"  {t['median_ms']:9.1f}"
        print(line)
    if 'aats' in results:
        a = results['aats']['total']
        print('\nAATS saves (1 - AATS / other), totals (>= where the other is a lower bound):')
        for label, r in results.items():
            if label == 'aats':
                continue
            t = r['total']
            ge = '>=' if t['lower_bound'] else '  '
            saves = dict(flops=1 - a['macs'][b0] / t['macs'][b0],
                         memory=1 - a['peak_mib'] / t['peak_mib'],
                         work_memory=1 - a['work_mib'] / t['work_mib'],
                         memory_is_lower_bound=t['lower_bound'])
            print(f"  vs {label:14s} FLOPs {100 * saves['flops']:6.2f}%   peak memory "
                  f"{ge}{100 * saves['memory']:6.2f}%   working memory "
                  f"{ge}{100 * saves['work_memory']:6.2f}%")
            r['aats_saves'] = saves
    for backend in args.backend[1:]:
        print(f'\n[{backend}] total GMACs: ' + ', '.join(
            f"{k} {r['total']['macs'][backend] / 1e9:.3f}" for k, r in results.items()
            if r['total']['macs'][backend] is not None))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(config=args.config, shape=list(args.shape), padded=list(padded),
                           device=args.device, torch=torch.__version__,
                           threads=torch.get_num_threads(), convention='MACs',
                           results=results), f, indent=2)
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
