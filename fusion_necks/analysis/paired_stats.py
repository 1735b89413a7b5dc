"""Paired comparison of two methods trained with the same seeds.

Runs of two configs that share a seed share the data order, the augmentation draws and
(for the shared layers) the initialisation, so the per-seed difference ``b - a`` removes
most of the seed-to-seed spread that an unpaired comparison of two means keeps. The
95% interval of the mean difference is Student's t interval (``n - 1`` degrees of
freedom) or, on request, a percentile bootstrap over seeds. A difference is called
*separated* when its interval excludes zero; with 5 seeds the t interval is
``mean +- 2.78 * sd / sqrt(5)``, so a difference must be consistent in sign across seeds
to separate.

Plain Python + numpy (scipy's t quantile when installed, else a table); no OpenMMLab.
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np

# two-sided 95% Student t quantiles t_{0.975, df}, df = 1..30 (used without scipy)
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile(confidence: float, df: int) -> float:
    """Two-sided Student t critical value: ``P(|T_df| <= t) = confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f'confidence must lie in (0, 1), got {confidence}')
    if df < 1:
        raise ValueError(f'a t interval needs at least 2 paired values (df >= 1), got df={df}')
    try:
        from scipy.stats import t
        return float(t.ppf(0.5 + confidence / 2.0, df))
    except ImportError:  # pragma: no cover - scipy ships with the pinned stack
        if abs(confidence - 0.95) > 1e-12:
            raise ValueError('without scipy only confidence=0.95 is available')
        return _T975[df - 1] if df <= len(_T975) else 1.959964


def summarize(values: Sequence[float]) -> Dict[str, float]:
    """Mean, sample standard deviation and count of one method's per-seed values."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError('summarize needs at least one value')
    return dict(n=int(v.size), mean=float(v.mean()),
                std=float(v.std(ddof=1)) if v.size > 1 else float('nan'))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                      method: str = 't', n_boot: int = 10000,
                      seed: Optional[int] = 0) -> Dict[str, float]:
    """Mean of ``b[i] - a[i]`` over seeds with its ``confidence`` interval.

    Args:
        a: per-seed metric of the baseline, in seed order.
        b: per-seed metric of the other method, the same seeds in the same order.
        confidence: coverage of the interval (0.95: a 95% interval).
        method: ``'t'`` (Student t on the differences) or ``'bootstrap'`` (percentile
            bootstrap of the mean difference, resampling seeds).
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap generator (the interval is reproducible).

    Returns:
        dict with ``n``, ``mean_diff``, ``sd_diff``, ``ci_low``, ``ci_high``, ``method``,
        ``separated`` (the interval excludes 0) and, for ``'t'``, ``t_crit``.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f'a and b must be 1-D with one value per shared seed, got shapes '
                         f'{a.shape} and {b.shape}')
    if a.size < 2:
        raise ValueError(f'a paired interval needs at least 2 seeds, got {a.size}')
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError('a and b must be finite (a failed run gives NaN: rerun it)')
    d = b - a
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    out = dict(n=n, mean_diff=mean, sd_diff=sd, method=method, confidence=confidence)
    if method == 't':
        t = t_quantile(confidence, n - 1)
        half = t * sd / math.sqrt(n)
        out.update(t_crit=t, ci_low=mean - half, ci_high=mean + half)
    elif method == 'bootstrap':
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_boot, n))
        means = d[idx].mean(axis=1)
        alpha = (1.0 - confidence) / 2.0
        out.update(ci_low=float(np.quantile(means, alpha)),
                   ci_high=float(np.quantile(means, 1.0 - alpha)))
    else:
        raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")
    out['separated'] = bool(out['ci_low'] > 0.0 or out['ci_high'] < 0.0)
    return out


def verdict(diff: Dict[str, float]) -> str:
    """One word for a :func:`paired_difference` result."""
    if not diff['separated']:
        return 'not separated'
    return 'separated (better)' if diff['mean_diff'] > 0 else 'separated (worse)'
