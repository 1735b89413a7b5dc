"""Merge the per-seed results of several ``compare_necks.py`` comparisons into one table.

    python tools/analysis/merge_comparisons.py A/comparison.json B/comparison.json [...]
           --out-dir DIR [--method t|bootstrap] [--confidence 0.95]

A comparison over five seeds need not run in one sitting: seeds 0-3 one day, seed 4 the
next (``compare_necks.py ... --seeds 3 4`` with another ``--work-dir``). This tool takes
the ``comparison.json`` of each part, checks that they compare the same configs (by
file name, the first being the baseline in every part) on the same metrics, and that a
seed present in two parts gave the same value there (the run was reproduced, not
changed: a conflict stops the merge and names the seed), then recomputes the means and
paired differences over the union of the seeds with compare_necks' own code and writes
``comparison.json`` and ``comparison.md`` to ``--out-dir``. Fusion statistics are merged
as the seed-weighted mean at the iterations every part logged. Each part's source and
seeds are kept under ``parts`` in the output.
"""
import argparse
import functools
import json
import os
import os.path as osp
import runpy
import sys
from typing import Dict, List, Sequence

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


@functools.lru_cache(maxsize=None)
def _compare_necks() -> Dict:
    """compare_necks' functions (its ``compare`` and ``format_markdown`` build the table)."""
    return runpy.run_path(osp.join(ROOT, 'tools', 'analysis', 'compare_necks.py'))


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(path))[0]


def merge_fusion_stats(parts: Sequence[Dict], stem: str, counts: Sequence[int]) -> Dict:
    """``key -> [[iteration, value], ...]``: seed-weighted means at the iterations that
    every part logged for ``key``."""
    per_part = [p['configs'][stem].get('fusion_stats') or {} for p in parts]
    keys = set.intersection(*(set(s) for s in per_part)) if per_part else set()
    merged = {}
    for key in sorted(keys):
        series = [dict((int(it), float(v)) for it, v in s[key]) for s in per_part]
        common = sorted(set.intersection(*(set(s) for s in series)))
        total = float(sum(counts))
        merged[key] = [[it, sum(n * s[it] for n, s in zip(counts, series)) / total]
                       for it in common]
    return merged


def merge(parts: Sequence[Dict], sources: Sequence[str], method: str = 't',
          confidence: float = 0.95) -> Dict:
    """One comparison table over the union of the parts' seeds (see the module doc)."""
    if len(parts) < 2:
        raise ValueError(f'give at least two comparison.json files to merge, got {len(parts)}')
    cn = _compare_necks()
    by_stem = []
    for part, src in zip(parts, sources):
        paths = part.get('configs_paths') or list(part['configs'])
        by_stem.append(dict(paths=paths, stems=[_stem(c) for c in paths], src=src))
    stems, metrics = by_stem[0]['stems'], parts[0]['metrics']
    for info, part in zip(by_stem[1:], parts[1:]):
        if info['stems'] != stems:
            raise ValueError(f'{info["src"]} compares {info["stems"]}, {sources[0]} compares '
                             f'{stems}: merge parts of the same comparison (same configs, '
                             f'same baseline first)')
        if part['metrics'] != metrics:
            raise ValueError(f'{info["src"]} has metrics {part["metrics"]}, {sources[0]} '
                             f'has {metrics}')
    # results[stem][seed] = the shape compare() reads from a demo_summary.json; the table
    # is keyed by the first part's config paths, as compare_necks keys it
    results: Dict[str, Dict[int, Dict]] = {s: {} for s in stems}
    keys = dict(zip(stems, by_stem[0]['paths']))
    origin: Dict[int, str] = {}
    for part, info in zip(parts, by_stem):
        for key, stem in zip(part['configs'], info['stems']):
            entry = part['configs'][key]
            wall = entry.get('total_seconds') or [float('nan')] * len(part['seeds'])
            for i, seed in enumerate(part['seeds']):
                values = {m: entry['metrics'][m]['values'][i] for m in metrics}
                old = results[stem].get(seed)
                if old is not None and old['metrics'] != values:
                    raise ValueError(f'seed {seed} of {stem} differs between {origin[seed]} '
                                     f'({old["metrics"]}) and {info["src"]} ({values}): '
                                     f'the run was not reproduced, so the parts do not '
                                     f'belong to one comparison')
                results[stem][seed] = dict(metrics=values, total_seconds=wall[i])
                origin.setdefault(seed, info['src'])
    seeds = sorted(results[stems[0]])
    for stem in stems:
        if sorted(results[stem]) != seeds:
            raise ValueError(f'{stem} has seeds {sorted(results[stem])}, {stems[0]} has '
                             f'{seeds}: every config needs every seed')
    table = cn['compare']({keys[s]: r for s, r in results.items()}, [keys[s] for s in stems],
                          seeds, metrics, method, confidence)
    counts = [len(p['seeds']) for p in parts]
    for stem in stems:
        table['configs'][keys[stem]]['fusion_stats'] = merge_fusion_stats(
            [dict(configs={_stem(k): v for k, v in p['configs'].items()}) for p in parts],
            stem, counts)
    table['configs_paths'] = by_stem[0]['paths']
    table['parts'] = [dict(source=src, seeds=p['seeds']) for p, src in zip(parts, sources)]
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description='Merge compare_necks results over seeds')
    p.add_argument('comparisons', nargs='+', help='comparison.json files of compare_necks.py')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--method', choices=('t', 'bootstrap'), default='t')
    p.add_argument('--confidence', type=float, default=0.95)
    args = p.parse_args(argv)
    for c in args.comparisons:
        if not osp.isfile(c):
            p.error(f'comparison file not found: {c}')
    parts = []
    for c in args.comparisons:
        with open(c) as f:
            parts.append(json.load(f))
    try:
        table = merge(parts, args.comparisons, args.method, args.confidence)
    except ValueError as e:
        raise SystemExit(f'error: {e}')
    md = _compare_necks()['format_markdown'](table, table['configs_paths'])
    md += '\nMerged from ' + '; '.join(
        f"`{part['source']}` (seeds {', '.join(map(str, part['seeds']))})"
        for part in table['parts']) + '.\n'
    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'comparison.json'), 'w') as f:
        json.dump(table, f, indent=2)
    with open(osp.join(args.out_dir, 'comparison.md'), 'w') as f:
        f.write(md)
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
