"""Paired comparison of two or more configs over shared seeds.

    python tools/analysis/compare_necks.py CONFIG_A CONFIG_B [CONFIG_C ...]
           --seeds 0 1 2 3 4 [--jobs 2] [--work-dir work_dirs/compare/NAME]
           [--metrics coco/bbox_mAP coco/bbox_mAP_s] [--method t|bootstrap]
           [--iters N] [--num-train N] [--num-val N] [--cfg-options KEY=VALUE ...]

Every ``(config, seed)`` pair is one ``tools/demo.py`` run (the quickstart's data,
training and evaluation through the real metric) with ``randomness.seed=S``, in
``WORK_DIR/<config stem>/seed<S>/``; ``--jobs`` runs go side by side, the cores split
between them (``OMP_NUM_THREADS``). A run whose ``demo_summary.json`` exists is not
repeated, so an interrupted comparison resumes, but only if it was made with the same
settings: each run records in ``compare_run.json`` its demo command, the number of
threads, the CPU kernel level PyTorch dispatches to (``AVX2``, ``AVX512``: machines of
one cloud type differ, and so do their floating-point results) and a hash of the
resolved config, and a finished run whose record differs (an edited config, other
``--iters``/``--num-train``/``--cfg-options``, another thread count or CPU, each of
which changes the floating-point path and hence the trajectory of a CPU training) stops
the comparison before anything runs, unless ``--rerun-stale`` reruns those runs. Runs
without a record (older tool versions) are reused with a warning. The first config is the baseline: for
each other config and metric the tool prints the per-seed values, the means and the
paired difference (other - baseline) with its 95% interval (Student t over the seeds, or
a percentile bootstrap), and the verdict *separated* (the interval excludes 0) or *not
separated*, and writes the same as ``comparison.json`` and ``comparison.md``.
"""
import argparse
import hashlib
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

from fusion_necks.analysis.paired_stats import (paired_difference, summarize,  # noqa: E402
                                                verdict)

DET_METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_s')
SEG_METRICS = ('mIoU', )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Paired multi-seed comparison of configs')
    p.add_argument('configs', nargs='+', help='two or more configs; the first is the baseline')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    p.add_argument('--jobs', type=int, default=2, help='runs side by side (cores are split)')
    p.add_argument('--threads', type=int, default=None,
                   help='intra-op threads per run (default: cores // jobs, at least 1)')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--metrics', nargs='+', default=None,
                   help=f'metric keys of demo_summary.json (default: {" ".join(DET_METRICS)} '
                        f'for detectors, {" ".join(SEG_METRICS)} for segmentors)')
    p.add_argument('--method', choices=('t', 'bootstrap'), default='t')
    p.add_argument('--confidence', type=float, default=0.95)
    p.add_argument('--iters', type=int, default=None, help='training length of every run')
    p.add_argument('--num-train', type=int, default=None)
    p.add_argument('--num-val', type=int, default=None)
    p.add_argument('--num-vis', type=int, default=2)
    p.add_argument('--fusion-stats', type=int, default=None, metavar='N',
                   help='log FINE |M| / ASFF and BAFF weight statistics every N iterations '
                        '(FusionStatsHook) and report them per config')
    p.add_argument('--task', choices=('det', 'seg'), default=None,
                   help='data the demo generates when missing (default: from the config name)')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='applied to every run (the seed is set by --seeds)')
    p.add_argument('--rerun-stale', action='store_true',
                   help='rerun finished runs whose recorded settings (command, threads, '
                        'resolved config) differ from this call instead of stopping')
    args = p.parse_args(argv)
    if len(args.configs) < 2:
        p.error('give at least two configs (the first is the baseline)')
    if len(set(args.seeds)) < 2 or len(set(args.seeds)) != len(args.seeds):
        p.error(f'--seeds must be at least two distinct seeds, got {args.seeds}')
    for c in args.configs:
        if not osp.isfile(c):
            p.error(f'config not found: {c}')
    stems = [osp.splitext(osp.basename(c))[0] for c in args.configs]
    if len(set(stems)) != len(stems):
        p.error(f'configs must have distinct file names (their runs go to WORK_DIR/<stem>), '
                f'got {stems}')
    if args.jobs < 1:
        p.error(f'--jobs must be >= 1, got {args.jobs}')
    return args


def run_dir(work_dir: str, config: str, seed: int) -> str:
    return osp.join(work_dir, osp.splitext(osp.basename(config))[0], f'seed{seed}')


def demo_command(args, config: str, seed: int, out: str) -> List[str]:
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--config', config,
           '--work-dir', out, '--num-vis', str(args.num_vis)]
    cmd += ['--task', task_of(args, config)]
    for key in ('iters', 'num_train', 'num_val', 'fusion_stats'):
        value = getattr(args, key)
        if value is not None:
            cmd += [f'--{key.replace("_", "-")}', str(value)]
    cmd += ['--cfg-options', f'randomness.seed={seed}', *args.cfg_options]
    return cmd


def task_of(args, config: str) -> str:
    return args.task or ('seg' if 'cityscapes' in osp.basename(config) else 'det')


def prepare_data(args, configs: Sequence[str]) -> None:
    """Generate each config's synthetic set once, before runs that share it start side by
    side (two demos generating the same missing set would race)."""
    import runpy
    demo = runpy.run_path(osp.join(ROOT, 'tools', 'demo.py'))
    from fusion_necks.utils.config import dataset_cfgs, load_config, parse_cfg_options
    for c in configs:
        task = task_of(args, c)
        cfg = load_config(c, parse_cfg_options(args.cfg_options))
        data_root = dataset_cfgs(cfg.train_dataloader)[0]['data_root']
        defaults = demo['TASKS'][task]
        demo['ensure_data'](task, data_root, args.num_train or defaults['num_train'],
                            args.num_val or defaults['num_val'])


RUN_RECORD = 'compare_run.json'


def config_hash(args, config: str) -> str:
    """sha256 of the resolved config (``_base_`` files and ``--cfg-options`` applied),
    with the repository root written as ``<root>`` so that a moved checkout matches."""
    from fusion_necks.utils.config import load_config, parse_cfg_options
    cfg = load_config(config, parse_cfg_options(args.cfg_options))
    return hashlib.sha256(cfg.pretty_text.replace(ROOT, '<root>').encode()).hexdigest()


def cpu_capability() -> str:
    """The ISA level of PyTorch's CPU kernels here (``ATEN_CPU_CAPABILITY`` lowers it)."""
    import torch
    return torch.backends.cpu.get_cpu_capability()


def run_fingerprint(args, config: str, seed: int, threads: int, cfg_hash: str) -> Dict:
    """What decides a run's result: the demo command (without the interpreter, the work
    dir and the picture's ``--num-vis``), the thread count, the CPU kernel level and the
    resolved config."""
    cmd = demo_command(args, config, seed, '<work_dir>')[1:]
    i = cmd.index('--num-vis')
    del cmd[i:i + 2]
    cmd[0] = osp.relpath(cmd[0], ROOT)
    cmd[cmd.index('--config') + 1] = osp.relpath(config, ROOT)
    return dict(command=cmd, threads=threads, cpu_capability=cpu_capability(),
                config_sha256=cfg_hash)


def stale_reason(out: str, fingerprint: Dict) -> Optional[str]:
    """``None`` if the finished run in ``out`` was made with ``fingerprint`` (or has no
    record), else what differs."""
    path = osp.join(out, RUN_RECORD)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        recorded = json.load(f)
    unknown = [k for k in fingerprint if k not in recorded]
    if unknown:  # recorded by an older compare_necks
        print(f'[compare] warning: {out} does not record {", ".join(unknown)}: reused '
              f'without checking it', flush=True)
    diffs = [f'{k}: {recorded[k]!r} -> {v!r}' if k != 'config_sha256' else
             'the resolved config changed' for k, v in fingerprint.items()
             if k in recorded and recorded[k] != v]
    return '; '.join(diffs) or None


def check_finished_runs(args, jobs, threads: int, hashes: Dict[str, str]) -> None:
    """Before anything runs: stop on finished runs made with other settings (or mark them
    for a rerun with ``--rerun-stale``); warn about runs that have no record."""
    stale = []
    for c, s in jobs:
        out = run_dir(args.work_dir, c, s)
        if not osp.isfile(osp.join(out, 'demo_summary.json')):
            continue
        if not osp.isfile(osp.join(out, RUN_RECORD)):
            print(f'[compare] warning: {out} has no {RUN_RECORD} (an older compare_necks): '
                  f'reused without checking its settings', flush=True)
            continue
        reason = stale_reason(out, run_fingerprint(args, c, s, threads, hashes[c]))
        if reason:
            stale.append((out, reason))
    if not stale:
        return
    listing = '\n'.join(f'  {out}: {reason}' for out, reason in stale)
    if not args.rerun_stale:
        raise SystemExit(f'error: {len(stale)} finished run(s) were made with other settings:'
                         f'\n{listing}\nrerun them with --rerun-stale, or use another '
                         f'--work-dir')
    print(f'[compare] rerunning {len(stale)} run(s) made with other settings:\n{listing}',
          flush=True)
    for out, _ in stale:
        os.remove(osp.join(out, 'demo_summary.json'))


def run_one(args, config: str, seed: int, threads: int, cfg_hash: str) -> Dict:
    out = run_dir(args.work_dir, config, seed)
    summary_path = osp.join(out, 'demo_summary.json')
    if not osp.isfile(summary_path):
        os.makedirs(out, exist_ok=True)
        with open(osp.join(out, RUN_RECORD), 'w') as f:
            json.dump(run_fingerprint(args, config, seed, threads, cfg_hash), f, indent=2)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        t = time.time()
        with open(osp.join(out, 'compare.log'), 'w') as log:
            rc = subprocess.call(demo_command(args, config, seed, out), stdout=log,
                                 stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if rc != 0 or not osp.isfile(summary_path):
            raise RuntimeError(f'run {config} seed {seed} failed (rc={rc}); see '
                               f'{osp.join(out, "compare.log")}')
        print(f'[compare] {osp.basename(config)} seed {seed}: done in {time.time() - t:.0f} s',
              flush=True)
    with open(summary_path) as f:
        return json.load(f)


def default_metrics(summary: Dict) -> Sequence[str]:
    return DET_METRICS if 'coco/bbox_mAP' in summary['metrics'] else SEG_METRICS


def mean_fusion_stats(summaries: Sequence[Dict]) -> Dict[str, list]:
    """``key -> [[iteration, mean over seeds], ...]`` of the runs' FusionStatsHook logs."""
    series: Dict[str, Dict[int, list]] = {}
    for summary in summaries:
        for key, points in (summary.get('fusion_stats') or {}).items():
            for it, value in points:
                series.setdefault(key, {}).setdefault(int(it), []).append(float(value))
    return {key: [[it, sum(v) / len(v)] for it, v in sorted(pts.items())]
            for key, pts in sorted(series.items())}


def compare(results: Dict[str, Dict[int, Dict]], configs: Sequence[str], seeds: Sequence[int],
            metrics: Sequence[str], method: str = 't', confidence: float = 0.95) -> Dict:
    """Per-seed values, summaries and paired differences against ``configs[0]``."""
    table: Dict = dict(seeds=list(seeds), metrics=list(metrics), method=method,
                       confidence=confidence, configs={}, differences={})
    for c in configs:
        per_metric = {}
        for m in metrics:
            missing = [s for s in seeds if m not in results[c][s]['metrics']]
            if missing:
                raise KeyError(f'metric {m!r} missing from the runs of {c} (seeds {missing}); '
                               f'available: {sorted(results[c][seeds[0]]["metrics"])}')
            vals = [float(results[c][s]['metrics'][m]) for s in seeds]
            per_metric[m] = dict(values=vals, **summarize(vals))
        wall = [results[c][s].get('total_seconds', float('nan')) for s in seeds]
        table['configs'][c] = dict(metrics=per_metric, total_seconds=wall,
                                   fusion_stats=mean_fusion_stats([results[c][s] for s in seeds]))
    base = configs[0]
    for c in configs[1:]:
        table['differences'][c] = {}
        for m in metrics:
            d = paired_difference(table['configs'][base]['metrics'][m]['values'],
                                  table['configs'][c]['metrics'][m]['values'],
                                  confidence=confidence, method=method)
            d['verdict'] = verdict(d)
            table['differences'][c][m] = d
    return table


def format_markdown(table: Dict, configs: Sequence[str]) -> str:
    name = {c: osp.splitext(osp.basename(c))[0] for c in configs}
    pct = int(round(table['confidence'] * 100))
    lines = [f"Seeds {', '.join(map(str, table['seeds']))}; paired difference vs "
             f"`{name[configs[0]]}` with a {pct}% "
             f"{'t' if table['method'] == 't' else 'bootstrap'} interval.", '']
    for m in table['metrics']:
        lines += [f'**{m}**', '',
                  '| config | ' + ' | '.join(f's{s}' for s in table['seeds']) +
                  ' | mean ± sd | diff [CI] | verdict |',
                  '|---' * (len(table['seeds']) + 4) + '|']
        for c in configs:
            r = table['configs'][c]['metrics'][m]
            row = f"| {name[c]} | " + ' | '.join(f'{v:.4g}' for v in r['values'])
            row += f" | {r['mean']:.4g} ± {r['std']:.2g} | "
            if c == configs[0]:
                row += 'baseline | |'
            else:
                d = table['differences'][c][m]
                row += (f"{d['mean_diff']:+.4g} [{d['ci_low']:+.4g}, {d['ci_high']:+.4g}] | "
                        f"{d['verdict']} |")
            lines.append(row)
        lines.append('')
    for c in configs:
        stats = table['configs'][c].get('fusion_stats') or {}
        if not stats:
            continue
        lines += [f'Fusion statistics of `{name[c]}` over training (mean over seeds; '
                  f'iteration: value):', '']
        for key, points in stats.items():
            shown = points if len(points) <= 6 else [points[0], *points[1:-1][::max(
                1, (len(points) - 2) // 4)][:4], points[-1]]
            lines.append(f'- {key}: ' + ', '.join(f'{it}: {v:.4g}' for it, v in shown))
        lines.append('')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    configs = [osp.abspath(c) for c in args.configs]
    stems = '_vs_'.join(osp.splitext(osp.basename(c))[0] for c in configs)
    args.work_dir = osp.abspath(args.work_dir or osp.join('work_dirs', 'compare', stems[:150]))
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    jobs = [(c, s) for s in args.seeds for c in configs]  # a seed's runs close together
    print(f'[compare] {len(jobs)} runs ({len(configs)} configs x {len(args.seeds)} seeds), '
          f'{args.jobs} at a time, {threads} thread(s) each -> {args.work_dir}', flush=True)
    t0 = time.time()
    hashes = {c: config_hash(args, c) for c in configs}
    check_finished_runs(args, jobs, threads, hashes)
    prepare_data(args, configs)
    results: Dict[str, Dict[int, Dict]] = {c: {} for c in configs}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, args, c, s, threads, hashes[c]): (c, s)
                   for c, s in jobs}
        for fut, (c, s) in futures.items():
            results[c][s] = fut.result()
    metrics = args.metrics or default_metrics(results[configs[0]][args.seeds[0]])
    table = compare(results, configs, args.seeds, metrics, args.method, args.confidence)
    table['configs_paths'] = [osp.relpath(c, ROOT) for c in configs]
    table['wall_seconds'] = round(time.time() - t0, 1)
    md = format_markdown(table, configs)
    with open(osp.join(args.work_dir, 'comparison.json'), 'w') as f:
        json.dump(table, f, indent=2)
    with open(osp.join(args.work_dir, 'comparison.md'), 'w') as f:
        f.write(md + '\n')
    print(md)
    print(f'[compare] wrote {osp.join(args.work_dir, "comparison.json")} and comparison.md '
          f'({table["wall_seconds"]:.0f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
