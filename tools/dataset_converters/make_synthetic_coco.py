"""Generate the synthetic COCO-format detection / instance-segmentation set.

    python tools/dataset_converters/make_synthetic_coco.py data/synthetic_coco \
        --num-train 1000 --num-val 200 --seed 0

Writes ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/*.jpg``
(the official COCO layout). Deterministic for a given seed and sizes.
"""
import argparse
import json
import time

from fusion_necks.datasets.synthetic_coco import CLASSES, generate_synthetic_coco, summary


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out_dir', nargs='?', default='data/synthetic_coco')
    p.add_argument('--num-train', type=int, default=1000)
    p.add_argument('--num-val', type=int, default=200)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--size', type=int, nargs=4, default=[288, 352, 288, 352],
                   metavar=('MIN_H', 'MAX_H', 'MIN_W', 'MAX_W'), help='image size range in pixels')
    p.add_argument('--objects', type=int, nargs=2, default=[2, 10], metavar=('MIN', 'MAX'),
                   help='objects per image')
    p.add_argument('--object-size', type=float, nargs=2, default=[8, 200], metavar=('MIN', 'MAX'),
                   help='object size (sqrt of area) in pixels, log-uniform')
    p.add_argument('--overwrite', action='store_true', help='regenerate existing splits')
    return p.parse_args()


def main():
    args = parse_args()
    t = time.time()
    paths = generate_synthetic_coco(
        args.out_dir, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
        overwrite=args.overwrite, image_size=tuple(args.size), num_objects=tuple(args.objects),
        min_size=args.object_size[0], max_size=args.object_size[1])
    for split, path in paths.items():
        with open(path) as f:
            print(f'{split}: {summary(json.load(f))} -> {path}')
    print(f'classes: {", ".join(CLASSES)}; {time.time() - t:.1f} s')


if __name__ == '__main__':
    main()
