"""tools/analysis/merge_comparisons.py: comparisons made in parts (seeds 0-2, then 3-4)
give the table of one comparison over all the seeds; parts that do not belong together
are refused."""
import json
import os.path as osp
import runpy

import pytest

from fusion_necks.analysis.paired_stats import paired_difference

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = runpy.run_path(osp.join(ROOT, 'tools', 'analysis', 'merge_comparisons.py'))
A, B = 'configs/quickstart/a_fpn.py', 'configs/quickstart/b_fine-lr0.1.py'
MAP, MAP_S = 'coco/bbox_mAP', 'coco/bbox_mAP_s'
ALL = {A: {MAP: [0.20, 0.24, 0.25, 0.22, 0.23], MAP_S: [0.26, 0.28, 0.30, 0.27, 0.29]},
       B: {MAP: [0.25, 0.27, 0.31, 0.19, 0.28], MAP_S: [0.30, 0.31, 0.33, 0.26, 0.32]}}


def part(seeds, stats=None, configs=(A, B), values=ALL):
    """A comparison.json as compare_necks writes it (absolute config keys)."""
    return dict(seeds=list(seeds), metrics=[MAP, MAP_S], method='t', confidence=0.95,
                configs_paths=list(configs),
                configs={f'/somewhere/{c}': dict(
                    metrics={m: dict(values=[values[c][m][s] for s in seeds])
                             for m in (MAP, MAP_S)},
                    total_seconds=[600.0 + s for s in seeds],
                    fusion_stats=(stats or {}) if c == B else {}) for c in configs})


def test_merged_table_is_the_comparison_over_all_seeds():
    s1 = {'fusion/x/M_abs': [[1, 0.0], [50, 1.0], [100, 2.0]]}
    s2 = {'fusion/x/M_abs': [[1, 0.0], [50, 4.0], [75, 9.0]]}
    table = TOOL['merge']([part([0, 1, 2], s1), part([3, 4], s2)], ['p1', 'p2'])
    assert table['seeds'] == [0, 1, 2, 3, 4]
    for c in (A, B):   # keyed by the config paths, as compare_necks keys its table
        for m in (MAP, MAP_S):
            assert table['configs'][c]['metrics'][m]['values'] == ALL[c][m]
    for m in (MAP, MAP_S):
        ref = paired_difference(ALL[A][m], ALL[B][m])
        got = table['differences'][B][m]
        for k in ('mean_diff', 'ci_low', 'ci_high'):
            assert got[k] == pytest.approx(ref[k], rel=1e-12)
        assert got['verdict'] in ('separated (better)', 'separated (worse)', 'not separated')
    # seed-weighted means at the iterations both parts logged (3 and 2 seeds)
    assert table['configs'][B]['fusion_stats'] == {
        'fusion/x/M_abs': [[1, 0.0], [50, pytest.approx((3 * 1.0 + 2 * 4.0) / 5)]]}
    assert table['configs'][A]['fusion_stats'] == {}
    assert table['configs'][A]['total_seconds'] == [600.0, 601.0, 602.0, 603.0, 604.0]
    assert table['parts'] == [dict(source='p1', seeds=[0, 1, 2]), dict(source='p2', seeds=[3, 4])]


def test_a_seed_in_two_parts_must_agree():
    # seed 2 rerun with the same result: fine
    table = TOOL['merge']([part([0, 1, 2]), part([2, 3, 4])], ['p1', 'p2'])
    assert table['seeds'] == [0, 1, 2, 3, 4]
    # a rerun that gave another value: the parts are not one comparison
    other = {c: {m: list(v) for m, v in d.items()} for c, d in ALL.items()}
    other[B][MAP][2] = 0.5
    with pytest.raises(ValueError, match=r'seed 2 of b_fine-lr0.1 differs between p1 .* and p2'):
        TOOL['merge']([part([0, 1, 2]), part([2, 3, 4], values=other)], ['p1', 'p2'])


def test_parts_of_different_comparisons_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match='compares'):
        TOOL['merge']([part([0, 1]), part([2, 3], configs=(B, A))], ['p1', 'p2'])
    wrong = part([2, 3])
    wrong['metrics'] = [MAP]
    with pytest.raises(ValueError, match='metrics'):
        TOOL['merge']([part([0, 1]), wrong], ['p1', 'p2'])
    with pytest.raises(ValueError, match='at least two'):
        TOOL['merge']([part([0, 1])], ['p1'])
    # the command line writes both files and names its parts
    paths = []
    for i, seeds in enumerate(([0, 1, 2], [3, 4])):
        paths.append(str(tmp_path / f'part{i}.json'))
        with open(paths[-1], 'w') as f:
            json.dump(part(seeds), f)
    out = tmp_path / 'merged'
    assert TOOL['main']([*paths, '--out-dir', str(out)]) == 0
    assert json.load(open(out / 'comparison.json'))['seeds'] == [0, 1, 2, 3, 4]
    md = (out / 'comparison.md').read_text()
    assert '| a_fpn | 0.2 | 0.24 | 0.25 | 0.22 | 0.23 |' in md
    assert '| b_fine-lr0.1 | 0.25 |' in md   # the whole file name, dots and all
    assert 'Merged from' in md and '(seeds 3, 4)' in md
    with pytest.raises(SystemExit):
        TOOL['main']([paths[0], str(tmp_path / 'missing.json'), '--out-dir', str(out)])
    assert 'comparison file not found' in capsys.readouterr().err
