"""Latency and peak-memory measurement of any callable (plain PyTorch, no mm imports).

Used by ``tools/analysis/benchmark.py`` and importable where only PyTorch is
installed (the GPU machine that times our modules has no mmcv/mmdet/mmseg).

Conventions:
- latency: wall-clock per call after ``warmup`` calls, ``torch.cuda.synchronize``
  around each call on CUDA; reported as median, interquartile range, min and max
  over ``runs`` calls, in milliseconds.
- peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only, the
  caching allocator's reserve excluded) above what was allocated before the call;
  on the CPU the peak resident set size (RSS) above the RSS before the calls,
  sampled every millisecond from ``/proc/self/statm`` by a background thread
  (PyTorch has no CPU allocator statistics; very short peaks can be missed, and
  allocator caching makes this an upper bound of the tensors' own footprint).
"""
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch


@dataclass
class Timing:
    """Latency statistics of one callable, in milliseconds; memory in MiB."""
    name: str
    runs: int
    median_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float
    peak_mem_mib: Optional[float] = None
    samples_ms: List[float] = field(default_factory=list, repr=False)

    def as_dict(self, with_samples: bool = False) -> Dict:
        d = asdict(self)
        if not with_samples:
            d.pop('samples_ms')
        return d


def _rss_bytes() -> int:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError):  # not Linux: fall back to the lifetime peak
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager measuring the peak memory of the code inside it (MiB).

    ``device`` 'cuda' uses the CUDA allocator's statistics; anything else samples RSS.
    """

    def __init__(self, device: str = 'cpu', interval_s: float = 0.001):
        self.cuda = str(device).startswith('cuda')
        self.interval_s = interval_s
        self.peak_mib: Optional[float] = None

    def __enter__(self) -> 'PeakMemory':
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = _rss_bytes()
            self._peak = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss > self._peak:
                self._peak = rss
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes()) - self._base
        self.peak_mib = max(peak, 0) / 2 ** 20


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def time_callable(fn: Callable[[], object], name: str = 'fn', runs: int = 20, warmup: int = 3,
                  device: str = 'cpu', measure_memory: bool = True) -> Timing:
    """Time ``fn()`` ``runs`` times after ``warmup`` calls (see module docstring)."""
    return time_alternating({name: fn}, runs=runs, warmup=warmup, device=device,
                            measure_memory=measure_memory)[name]


def time_alternating(fns: Dict[str, Callable[[], object]], runs: int = 20, warmup: int = 3,
                     device: str = 'cpu', measure_memory: bool = True) -> Dict[str, Timing]:
    """Time several callables in alternation (A B C A B C ...) within one process.

    Interleaving spreads slow drifts of the machine (thermal state, other load)
    evenly over the candidates, so the ratio of their medians is meaningful even
    on a noisy machine. Peak memory is measured in a separate call per candidate
    (after timing) so that the sampling thread does not disturb the timings.
    """
    if runs < 1:
        raise ValueError(f'runs must be >= 1, got {runs}')
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    _sync(device)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    for _ in range(runs):
        for n in names:
            _sync(device)
            t0 = time.perf_counter()
            fns[n]()
            _sync(device)
            samples[n].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for n in names:
        peak = None
        if measure_memory:
            with PeakMemory(device) as pm:
                fns[n]()
            peak = pm.peak_mib
        out[n] = summarise(n, samples[n], peak)
    return out


def summarise(name: str, samples_ms: Sequence[float], peak_mem_mib: Optional[float] = None) -> Timing:
    s = sorted(samples_ms)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4)
        iqr = q[2] - q[0]
    else:
        iqr = s[-1] - s[0]
    return Timing(name=name, runs=len(s), median_ms=statistics.median(s), iqr_ms=iqr,
                  min_ms=s[0], max_ms=s[-1], mean_ms=statistics.fmean(s),
                  peak_mem_mib=peak_mem_mib, samples_ms=list(samples_ms))


def format_table(timings: Sequence[Timing], reference: Optional[str] = None) -> str:
    """A plain-text table; with ``reference``, a column of median ratios to it."""
    ref = next((t for t in timings if t.name == reference), None) if reference else None
    head = f"{'name':40s} {'median ms':>10s} {'IQR ms':>8s} {'min ms':>8s} {'peak MiB':>9s}"
    if ref is not None:
        head += f" {'ratio':>6s}"
    lines = [head, '-' * len(head)]
    for t in timings:
        mem = f'{t.peak_mem_mib:9.1f}' if t.peak_mem_mib is not None else f"{'-':>9s}"
        line = f'{t.name[:40]:40s} {t.median_ms:10.2f} {t.iqr_ms:8.2f} {t.min_ms:8.2f} {mem}'
        if ref is not None:
            line += f' {t.median_ms / ref.median_ms:6.3f}'
        lines.append(line)
    return '\n'.join(lines)
