"""Peak CPU memory of AutoFocusFormer forward (+ backward) at a given size.

    python tools/analysis/aff_peak_memory.py [--arch tiny] [--size 512 512] [--batch 2]
                                             [--no-backward] [--threads 1]

Runs one training-mode forward and backward (loss = sum of the four stage outputs) in a
fresh process and reports the process's peak resident set size (``ru_maxrss``, which
includes the interpreter, torch and the model: the number an out-of-memory killer
sees), the RSS before the pass, and the wall time. Plain PyTorch: it runs where only
torch is installed. The issue's target is AFF-Tiny, 512x512, batch 2, forward+backward
within 6 GiB.
"""
import argparse
import os.path as osp
import resource
import sys
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def rss_now_mib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='tiny')
    p.add_argument('--size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--no-backward', action='store_true')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: leave the default)')
    args = p.parse_args(argv)

    import torch

    from fusion_necks.backbones.autofocusformer import AutoFocusFormer
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoFocusFormer(args.arch)
    model.train(not args.no_backward)
    x = torch.randn(args.batch, 3, *args.size)
    before = rss_now_mib()
    start = time.perf_counter()
    if args.no_backward:
        with torch.no_grad():
            outs = model(x)
    else:
        outs = model(x)
        loss = sum(o.feat.float().mean() for o in outs)
        loss.backward()
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    mode = 'forward' if args.no_backward else 'forward+backward'
    print(f'AFF-{args.arch} {mode}, batch {args.batch}, {args.size[0]}x{args.size[1]}, '
          f'{torch.get_num_threads()} thread(s), torch {torch.__version__}')
    print(f'tokens per stage: {[o.feat.shape[1] for o in outs]}')
    print(f'RSS before the pass: {before:.0f} MiB; peak RSS: {peak:.0f} MiB '
          f'({peak / 1024:.2f} GiB); wall time {elapsed:.1f} s')
    return peak


if __name__ == '__main__':
    main()
