"""A one-line progress bar with ETA for training runs (the quickstart's ``tools/demo.py``).

mmengine's logger prints a line every ``interval`` iterations; a newcomer watching
``make demo`` wants to see how far the run is and when it ends. This hook draws

    [train] |##########----------|  225/450  50%  1.31 s/it  ETA 4:55

in place on a terminal (carriage return), and as a new line every 5% of the run when
the output is a file or a pipe, so logs stay readable.
"""
import sys
import time
from typing import Optional, TextIO

from .weights_only_checkpoint_hook import _hook_base


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m}:{s:02d}'


def progress_line(done: int, total: int, elapsed: float, width: int = 20) -> str:
    """``[train] |###---|  done/total  pct  s/it  ETA m:ss`` (rate over the whole run)."""
    frac = done / total if total else 1.0
    filled = int(round(width * frac))
    rate = elapsed / done if done else float('nan')
    eta = rate * (total - done) if done else float('nan')
    eta_s = format_duration(eta) if done else '?'
    return (f'[train] |{"#" * filled}{"-" * (width - filled)}| {done:>{len(str(total))}}/'
            f'{total} {100 * frac:3.0f}%  {rate:.2f} s/it  ETA {eta_s}')


class ProgressBarHook(_hook_base()):
    """Draw :func:`progress_line` after every training iteration (module docstring).

    Args:
        stream: where to draw (default ``sys.stdout``).
        every_percent: without a terminal, print a line each time this share of the
            run is done.
    """

    priority = 'VERY_LOW'

    def __init__(self, stream: Optional[TextIO] = None, every_percent: float = 5.0) -> None:
        self.stream = stream
        self.every_percent = every_percent
        self._t0 = None
        self._last_pct = float('-inf')   # the first iteration prints (an early ETA)

    def before_train(self, runner) -> None:
        self._t0 = time.time()
        self._start_iter = runner.iter
        self._last_pct = float('-inf')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        stream = self.stream or sys.stdout
        total = runner.max_iters - self._start_iter
        done = runner.iter + 1 - self._start_iter
        line = progress_line(done, total, time.time() - self._t0)
        if getattr(stream, 'isatty', lambda: False)():
            stream.write('\r' + line + ('\n' if done >= total else ''))
        else:
            pct = 100.0 * done / total
            if pct - self._last_pct < self.every_percent and done < total:
                return
            self._last_pct = pct
            stream.write(line + '\n')
        stream.flush()
