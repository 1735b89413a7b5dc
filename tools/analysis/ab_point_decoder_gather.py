"""Point pixel decoder with the previous and the current ``weighted_gather``, alternated in
one process with mmdet's grid decoder (the figures of docs/point_mask2former.md, "Fused
weighted sum").

    python tools/analysis/ab_point_decoder_gather.py [--shape 512 1024] [--runs 5] [--threads 2]

The point deformable attention's ``weighted_gather`` is swapped between calls
(``op_references/weighted_gather_v1.py`` vs the library's), so the two point rows differ
only in that op; prints the median and minimum latency of each and the ratios to the
grid decoder. Inference, batch 1, AFF-Tiny channels (64/128/256/512 at strides 4-32).
"""
import argparse
import os.path as osp
import sys
import time

import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(__file__))

import fusion_necks.layers.point.point_deform_attn as pda  # noqa: E402
from fusion_necks.analysis import measure_targets  # noqa: E402
from op_references.weighted_gather_v1 import weighted_gather_v1  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', type=int, nargs=2, default=(512, 1024), metavar=('H', 'W'))
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    args = p.parse_args(argv)
    h, w = args.shape
    if h % 32 or w % 32:
        raise SystemExit(f'--shape must be multiples of 32 (strides 4-32), got {h} x {w}')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    chans = (64, 128, 256, 512)
    xs = [torch.randn(1, c, h // s, w // s) for c, s in zip(chans, (4, 8, 16, 32))]
    point = measure_targets.point_pixel_decoder(chans)
    grid = measure_targets.grid_pixel_decoder(chans)
    current = pda.weighted_gather
    variants = {'point, previous gather': (point, weighted_gather_v1),
                'point, current gather': (point, current),
                'grid decoder (mmdet)': (grid, current)}
    times = {k: [] for k in variants}
    with torch.inference_mode():
        point(*xs)
        grid(*xs)
        for _ in range(args.runs):
            for name, (model, gather) in variants.items():
                pda.weighted_gather = gather
                t = time.perf_counter()
                model(*xs)
                times[name].append(1e3 * (time.perf_counter() - t))
    pda.weighted_gather = current
    g = sorted(times['grid decoder (mmdet)'])[len(times['grid decoder (mmdet)']) // 2]
    for name, ts in times.items():
        ts = sorted(ts)
        med = ts[len(ts) // 2]
        print(f'{name:24s} median {med:8.0f} ms  min {ts[0]:8.0f} ms  / grid {med / g:.2f}')
    return times


if __name__ == '__main__':
    main()
