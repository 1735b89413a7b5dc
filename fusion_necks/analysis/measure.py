"""Latency and peak-memory measurement of any callable (plain PyTorch, no mm imports).

Used by ``tools/analysis/benchmark.py`` and importable where only PyTorch is
installed (the GPU machine that times our modules has no mmcv/mmdet/mmseg).

Conventions:
- latency: wall-clock per call after ``warmup`` calls, ``torch.cuda.synchronize``
  around each call on CUDA; reported as median, interquartile range, min and max
  over ``runs`` calls, in milliseconds.
- peak memory: the peak of tensor memory allocated during the call, above what
  was allocated before it. On CUDA ``torch.cuda.max_memory_allocated`` (the
  caching allocator's reserve excluded). On the CPU, where PyTorch keeps no
  allocator statistics, the same quantity is computed from the allocation and
  free events that ``torch.profiler`` records with ``profile_memory=True``
  (``method='allocator'``, default). ``method='rss'`` instead samples the process's
  resident set size every millisecond (includes allocator caching and non-tensor
  memory; short peaks can be missed).
"""
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Collection, Dict, List, Optional, Sequence

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

    See the module docstring: ``device`` 'cuda' uses the CUDA allocator's
    statistics; on the CPU ``method`` is 'allocator' (profiler events) or 'rss'.
    """

    METHODS = ('allocator', 'rss')

    def __init__(self, device: str = 'cpu', method: str = 'allocator', interval_s: float = 0.001):
        if method not in self.METHODS:
            raise ValueError(f'method must be one of {self.METHODS}, got {method!r}')
        self.cuda = str(device).startswith('cuda')
        self.method = method
        self.interval_s = interval_s
        self.peak_mib: Optional[float] = None

    def __enter__(self) -> 'PeakMemory':
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        elif self.method == 'allocator':
            from torch.profiler import ProfilerActivity, profile
            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._prof.__enter__()
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
        elif self.method == 'allocator':
            self._prof.__exit__(*exc)
            peak = _peak_from_profiler(self._prof)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes()) - self._base
        self.peak_mib = max(peak, 0) / 2 ** 20


def _peak_from_profiler(prof) -> int:
    """Peak of the running sum of allocation (+) and free (-) events, in bytes."""
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def _sync(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def time_callable(fn: Callable[[], object], name: str = 'fn', runs: int = 20, warmup: int = 3,
                  device: str = 'cpu', measure_memory: bool = True,
                  memory_method: str = 'allocator') -> Timing:
    """Time ``fn()`` ``runs`` times after ``warmup`` calls (see module docstring)."""
    return time_alternating({name: fn}, runs=runs, warmup=warmup, device=device,
                            measure_memory=measure_memory, memory_method=memory_method)[name]


def time_alternating(fns: Dict[str, Callable[[], object]], runs: int = 20, warmup: int = 3,
                     device: str = 'cpu', measure_memory: bool = True,
                     memory_method: str = 'allocator',
                     memory_for: Optional[Collection[str]] = None) -> Dict[str, Timing]:
    """Time several callables in alternation (A B C A B C ...) within one process.

    Interleaving spreads slow drifts of the machine (thermal state, other load)
    evenly over the candidates, so the ratio of their medians is meaningful even
    on a noisy machine. Peak memory is measured in a separate call per candidate
    (after timing) so that the profiler or sampler does not disturb the timings;
    ``memory_for`` limits it to those names (e.g. not code that allocates outside torch,
    which the allocator method cannot see).
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
        if measure_memory and (memory_for is None or n in memory_for):
            with PeakMemory(device, method=memory_method) as pm:
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
    width = max([40] + [len(t.name) for t in timings])
    head = f"{'name':{width}s} {'median ms':>10s} {'IQR ms':>8s} {'min ms':>8s} {'peak MiB':>9s}"
    if ref is not None:
        head += f" {'ratio':>6s}"
    lines = [head, '-' * len(head)]
    for t in timings:
        mem = f'{t.peak_mem_mib:9.1f}' if t.peak_mem_mib is not None else f"{'-':>9s}"
        line = f'{t.name:{width}s} {t.median_ms:10.2f} {t.iqr_ms:8.2f} {t.min_ms:8.2f} {mem}'
        if ref is not None:
            line += f' {t.median_ms / ref.median_ms:6.3f}'
        lines.append(line)
    return '\n'.join(lines)
