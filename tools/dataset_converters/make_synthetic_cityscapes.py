"""Generate the synthetic Cityscapes-format street-scene set.

    python tools/dataset_converters/make_synthetic_cityscapes.py data/synthetic_cityscapes \
        --num-train 200 --num-val 40 --size 256 512 --seed 0

Writes ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and, next to each other
in ``gtFine/{train,val}/<city>/``, ``*_labelTrainIds.png``, ``*_labelIds.png`` and
``*_instanceIds.png`` (the official layout), plus ``{train,val}.txt`` listings.
"""
import argparse
import glob
import os.path as osp
import time

import cv2
import numpy as np

from fusion_necks.datasets.synthetic_cityscapes import CLASSES, generate_synthetic_cityscapes


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out_dir', nargs='?', default='data/synthetic_cityscapes')
    p.add_argument('--num-train', type=int, default=200)
    p.add_argument('--num-val', type=int, default=40)
    p.add_argument('--size', type=int, nargs=2, default=[256, 512], metavar=('H', 'W'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true')
    args = p.parse_args()
    t = time.time()
    done = generate_synthetic_cityscapes(args.out_dir, args.num_train, args.num_val, args.seed,
                                         tuple(args.size), args.overwrite)
    for split, n in done.items():
        present = np.zeros(19, bool)
        for path in glob.glob(osp.join(args.out_dir, 'gtFine', split, '*', '*_labelTrainIds.png')):
            ids = np.unique(cv2.imread(path, cv2.IMREAD_UNCHANGED))
            present[ids[ids < 19]] = True
        missing = [CLASSES[i] for i in np.nonzero(~present)[0]]
        print(f'{split}: {n} images; classes present {present.sum()}/19'
              + (f' (missing: {", ".join(missing)})' if missing else ''))
    print(f'{time.time() - t:.1f} s -> {args.out_dir}')


if __name__ == '__main__':
    main()
