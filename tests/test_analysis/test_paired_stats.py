"""Paired multi-seed statistics (fusion_necks.analysis.paired_stats) on known numbers."""
import math

import numpy as np
import pytest

from fusion_necks.analysis.paired_stats import (paired_difference, summarize, t_quantile,
                                                verdict)


def test_t_quantiles_match_tables():
    # textbook two-sided 95% values
    for df, t in ((1, 12.706), (4, 2.776), (9, 2.262), (29, 2.045)):
        assert t_quantile(0.95, df) == pytest.approx(t, abs=1e-3)
    assert t_quantile(0.99, 4) == pytest.approx(4.604, abs=1e-3)


def test_t_interval_on_known_differences():
    a = [0.30, 0.31, 0.29, 0.33, 0.32]
    d = [0.01, 0.02, 0.03, 0.04, 0.05]  # mean 0.03, sd 0.0158114, se 0.0070711
    b = [x + y for x, y in zip(a, d)]
    r = paired_difference(a, b)
    assert r['n'] == 5 and r['mean_diff'] == pytest.approx(0.03)
    assert r['sd_diff'] == pytest.approx(math.sqrt(2.5) / 100)
    half = 2.7764451 * math.sqrt(2.5) / 100 / math.sqrt(5)
    assert r['ci_low'] == pytest.approx(0.03 - half, abs=1e-7)
    assert r['ci_high'] == pytest.approx(0.03 + half, abs=1e-7)
    assert r['separated'] and verdict(r) == 'separated (better)'
    # the same differences in the other direction
    r2 = paired_difference(b, a)
    assert r2['mean_diff'] == pytest.approx(-0.03) and verdict(r2) == 'separated (worse)'


def test_pairing_removes_the_seed_spread():
    """Seeds move both methods together: the unpaired spread (0.05) hides a +0.01 that the
    paired differences show."""
    a = np.array([0.20, 0.25, 0.30, 0.35, 0.40])
    b = a + np.array([0.011, 0.009, 0.010, 0.012, 0.008])
    assert paired_difference(a, b)['separated']
    # differences of both signs do not separate
    r = paired_difference([0.3, 0.3, 0.3, 0.3], [0.31, 0.29, 0.32, 0.28])
    assert r['mean_diff'] == pytest.approx(0.0) and not r['separated']
    assert verdict(r) == 'not separated'


def test_bootstrap_interval_is_reproducible_and_close_to_t():
    rng = np.random.default_rng(3)
    a = rng.normal(0.3, 0.05, 30)
    b = a + rng.normal(0.02, 0.01, 30)
    t = paired_difference(a, b)
    bs = paired_difference(a, b, method='bootstrap', n_boot=20000)
    assert bs == paired_difference(a, b, method='bootstrap', n_boot=20000)
    assert bs['ci_low'] == pytest.approx(t['ci_low'], abs=2e-3)
    assert bs['ci_high'] == pytest.approx(t['ci_high'], abs=2e-3)
    assert bs['ci_low'] < bs['mean_diff'] < bs['ci_high']


def test_summarize():
    s = summarize([1.0, 2.0, 3.0])
    assert s == dict(n=3, mean=2.0, std=1.0)


@pytest.mark.parametrize('a, b, match', [
    ([0.1, 0.2], [0.1], 'one value per shared seed'),
    ([0.1], [0.2], 'at least 2 seeds'),
    ([0.1, float('nan')], [0.2, 0.3], 'finite'),
])
def test_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b)
    with pytest.raises(ValueError, match='method'):
        paired_difference([0.1, 0.2], [0.2, 0.3], method='z')
