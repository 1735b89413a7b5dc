"""tools/analysis/fine_attention_cost.py (FINE Table 3): the MACs it reports equal the
closed forms of Eqs. 5-7 on the token counts of each attention strategy, and the dense
vanilla variant materialises the N_low x N_high score matrix while SDPA does not."""
import json
import os.path as osp
import runpy

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
C, HEADS = 256, 16


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = str(tmp_path_factory.mktemp('fine_cost') / 'cost.json')
    tool = runpy.run_path(osp.join(ROOT, 'tools', 'analysis', 'fine_attention_cost.py'))
    try:
        assert tool['main'](['--shape', '64', '90', '--json', out]) == 0
    finally:
        torch.set_num_threads(n)
    with open(out) as f:
        return json.load(f)


def macs(n_q, n_k):
    """Eqs. 5-7: W_Q, W_O on the queries, W_K, W_V on the keys, Q K^T and A V."""
    return 2 * (n_q + n_k) * C * C + 2 * n_q * n_k * C


def test_inputs_are_the_pyramid_levels_of_the_padded_image(report):
    assert report['padded'] == [64, 96]  # pad_size_divisor 32
    stages = report['results']['aats']['stages']
    assert stages['level2']['low'] == [1, C, 4, 6] and stages['level2']['high'] == [1, C, 2, 3]
    assert stages['level1']['low'] == [1, C, 8, 12] and stages['level1']['high'] == [1, C, 4, 6]


def test_macs_follow_the_token_counts(report):
    res = report['results']
    # AATS (r=2; k=1 at level2, k=2 at level1): both stages attend 2x3 low to 2x3 high tokens
    for stage in ('level2', 'level1'):
        assert res['aats']['stages'][stage]['macs']['torch'] == macs(6, 6)
    # vanilla: every low pixel to every high pixel, whatever the SDPA kernel
    for label in ('vanilla', 'vanilla-dense'):
        assert res[label]['stages']['level2']['macs']['torch'] == macs(24, 6)
        assert res[label]['stages']['level1']['macs']['torch'] == macs(96, 24)
    for label in ('window', 'area', 'linear'):
        assert res[label]['total']['macs']['torch'] > res['aats']['total']['macs']['torch']
    for r in res.values():
        assert r['total']['params'] == 2 * 4 * C * C


def test_dense_vanilla_materialises_the_score_matrix(report):
    res = report['results']
    matrix_mib = HEADS * 96 * 24 * 4 / 2 ** 20     # level1, fp32
    dense = res['vanilla-dense']['stages']['level1']['peak_mib']
    flash = res['vanilla']['stages']['level1']['peak_mib']
    assert dense >= 2 * matrix_mib                  # scores and their softmax
    assert flash < dense
    assert res['aats']['total']['peak_mib'] < flash
    assert 0 < res['vanilla-dense']['aats_saves']['memory'] < 1


def test_dense_vanilla_too_big_for_memory_is_a_lower_bound(tmp_path):
    """Where the score matrices do not fit, vanilla-dense is not run: its MACs come from
    the meta device (equal to the run variant's) and its memory is the matrices' size."""
    tool = runpy.run_path(osp.join(ROOT, 'tools', 'analysis', 'fine_attention_cost.py'))
    tool['main'].__globals__['available_memory'] = lambda: 1  # 1 byte available
    out = str(tmp_path / 'cost.json')
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert tool['main'](['--shape', '64', '90', '--attentions', 'aats', 'vanilla',
                             '--json', out]) == 0
    finally:
        torch.set_num_threads(n)
    with open(out) as f:
        res = json.load(f)['results']
    dense, flash = res['vanilla-dense'], res['vanilla']
    for stage in ('level1', 'level2'):
        d = dense['stages'][stage]
        assert d['lower_bound'] and 'not run' in d['skipped']
        assert d['macs']['torch'] == flash['stages'][stage]['macs']['torch']
    assert dense['stages']['level1']['peak_mib'] == 2 * HEADS * 96 * 24 * 4 / 2 ** 20
    assert dense['total']['lower_bound'] and not flash['total']['lower_bound']
    assert dense['aats_saves']['memory_is_lower_bound']
