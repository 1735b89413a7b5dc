"""Wall time of ``make demo NECK=...`` for every quickstart neck, estimated from short runs.

    python tools/analysis/time_demo_necks.py [--necks fpn fine fine-lr0.1 asff asff-uniform]
           [--iters 60] [--skip 20] [--log-interval 10] [--full-iters 900]
           [--work-dir work_dirs/bench/necks_idle]

Each neck runs ``tools/demo.py --neck N --iters ITERS`` (the same data, recipe and
evaluation as ``make demo``, only shorter), one after the other with all cores; run it on
an idle machine. The full run's training time is estimated as the seconds per iteration
times ``--full-iters``, where the seconds per iteration are the mean of the times that
mmengine logged every ``--log-interval`` iterations (each the mean of its last 10
iterations) after the first ``--skip`` (start-up: allocator warm-up, first data loads);
one logged window alone varies by ~8% between identical runs. The evaluation time is
measured (the run's total minus its training). Writes ``necks_idle.json`` and a
Markdown table into the work dir.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

DEFAULT_NECKS = ('fpn', 'fine', 'fine-lr0.1', 'asff', 'asff-uniform')


def logged_seconds_per_iter(work_dir: str, skip: int) -> float:
    """Mean of the ``time`` values that mmengine's logger wrote for training iterations
    after ``skip`` (from the latest ``*/vis_data/scalars.json`` under ``work_dir`` that
    logged training; the evaluation writes a timestamped folder of its own)."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir!r}: did the run '
                                f'log any training iteration?')
    for path in reversed(files):
        logged = {}
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'time' in rec and 'iter' in rec and 'loss' in rec:
                    logged[int(rec['iter'])] = float(rec['time'])
        if logged:
            kept = [t for it, t in logged.items() if it > skip]
            if not kept:
                raise ValueError(f'no iteration after --skip {skip} was logged in {path} '
                                 f'(logged: {sorted(logged)}); lower --skip or run longer')
            return sum(kept) / len(kept)
    raise ValueError(f'no training iteration logged under {work_dir!r} ({len(files)} '
                     f'scalars.json files)')


def estimate(summary: Dict, sec_per_iter: float, full_iters: int) -> Dict:
    """Estimated full-run times (minutes) from a short run's summary."""
    eval_s = summary['total_seconds'] - summary['train_seconds']
    train_s = sec_per_iter * full_iters
    return dict(sec_per_iter=round(sec_per_iter, 3), train_min=round(train_s / 60, 1),
                eval_min=round(eval_s / 60, 1), total_min=round((train_s + eval_s) / 60, 1))


def markdown(rows: Dict[str, Dict]) -> str:
    lines = ['| `make demo NECK=` | s / iteration | train, est. | + evaluation | total, est. |',
             '|---|---|---|---|---|']
    for neck, r in rows.items():
        lines.append(f"| `{neck}` | {r['sec_per_iter']:.3f} | {r['train_min']} min | "
                     f"{r['eval_min']} min | {r['total_min']} min |")
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> Dict[str, Dict]:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--necks', nargs='+', default=list(DEFAULT_NECKS))
    p.add_argument('--iters', type=int, default=60, help='iterations of each short run')
    p.add_argument('--skip', type=int, default=20,
                   help='start-up iterations left out of the mean time per iteration')
    p.add_argument('--log-interval', type=int, default=10,
                   help='logging interval of the short runs (one logged time per window)')
    p.add_argument('--full-iters', type=int, default=900, help='length of the full recipe')
    p.add_argument('--work-dir', default=osp.join('work_dirs', 'bench', 'necks_idle'))
    args = p.parse_args(argv)
    if not 0 <= args.skip < args.iters - args.log_interval + 1:
        raise SystemExit(f'--skip must leave at least one logged window of --log-interval '
                         f'{args.log_interval} before --iters {args.iters}, got {args.skip}')
    rows = {}
    for neck in args.necks:
        wd = osp.join(args.work_dir, neck)
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--neck', neck,
               '--iters', str(args.iters), '--work-dir', wd, '--cfg-options',
               f'default_hooks.logger.interval={args.log_interval}']
        print('[time_demo_necks]', ' '.join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
        with open(osp.join(wd, 'demo_summary.json')) as f:
            summary = json.load(f)
        rows[neck] = estimate(summary, logged_seconds_per_iter(wd, args.skip), args.full_iters)
        print(f'[time_demo_necks] {neck}: {rows[neck]}', flush=True)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'necks_idle.json'), 'w') as f:
        json.dump(rows, f, indent=1)
    table = markdown(rows)
    with open(osp.join(args.work_dir, 'necks_idle.md'), 'w') as f:
        f.write(table)
    print(table)
    return rows


if __name__ == '__main__':
    main()
