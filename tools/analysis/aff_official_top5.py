"""Top-5 ImageNet classes of an official AutoFocusFormer checkpoint under both readings.

Loads an official classification checkpoint (apple/ml-autofocusformer ``.pth``, converted
on load) into :class:`~fusion_necks.backbones.AutoFocusFormerNet` twice, with
``rules='exact'`` (our default) and ``rules='official'`` (the official code's four
discrete rules, see docs/autofocusformer.md), and prints, for one image, the top-5 class
indices and probabilities of each and the largest logit difference between them.

    python tools/analysis/aff_official_top5.py --checkpoint aff_mini.pth --arch mini
    python tools/analysis/aff_official_top5.py --random-official-weights 0   # no checkpoint

The image defaults to ``grace_hopper.jpg`` from matplotlib's sample data (a fixed photo
that an installed package ships). Preprocessing is the official evaluation transform:
resize the shorter side to ``int(size / 0.875)`` (bicubic), centre crop ``size``, ImageNet
mean/std. ``--random-official-weights SEED`` builds an official-layout state dict with
random values instead of reading a checkpoint (the classes are then meaningless; what is
shown is whether the two readings agree).
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from fusion_necks.backbones.aff_official_weights import (  # noqa: E402
    random_official_aff_state_dict, unwrap_checkpoint)
from fusion_necks.backbones.autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormerNet  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_image() -> str:
    from matplotlib import cbook
    return cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)


def load_image(path: str, size: int) -> torch.Tensor:
    """``1 x 3 x size x size`` float tensor with the official evaluation transform."""
    from PIL import Image
    if not osp.isfile(path):
        raise FileNotFoundError(f'--image {path!r} does not exist')
    img = Image.open(path).convert('RGB')
    resize = int(size / 0.875)
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(resize, round(w * scale)), max(resize, round(h * scale))),
                     Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def load_official_state(path: str, trust: bool) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'--checkpoint {path!r} does not exist')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the remedy unless trusted
        if not trust:
            raise SystemExit(f'{path}: refused by weights_only=True ({type(err).__name__}: '
                             f'{str(err).splitlines()[0]}); official .pth files also pickle '
                             f'their config. If you trust the file, pass --trust-checkpoint.')
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    return dict(unwrap_checkpoint(ckpt))


def build(arch: str, rules: str, state: dict) -> AutoFocusFormerNet:
    model = AutoFocusFormerNet(arch, num_classes=1000, nbhd_size=(48, 48, 48, 49), rules=rules)
    model.load_state_dict(state, strict=True)  # the load hook converts official names
    return model.eval()


def top5(arch: str, state: dict, image: torch.Tensor) -> dict:
    out = {}
    with torch.no_grad():
        for rules in ('exact', 'official'):
            logits = build(arch, rules, dict(state))(image)[0]
            prob = logits.softmax(-1)
            p, idx = prob.topk(5)
            out[rules] = dict(logits=logits, top5=[(int(i), float(v)) for i, v in zip(idx, p)])
    out['max_abs_logit_diff'] = float((out['exact']['logits'] - out['official']['logits'])
                                      .abs().max())
    out['logit_scale'] = float(out['official']['logits'].abs().max())
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--checkpoint', help='official classification checkpoint (.pth)')
    src.add_argument('--random-official-weights', type=int, metavar='SEED',
                     help='random official-layout weights instead of a checkpoint')
    p.add_argument('--arch', default='mini', choices=sorted(AFF_ARCH_SETTINGS))
    p.add_argument('--image', default=None, help='image file (default: grace_hopper.jpg)')
    p.add_argument('--size', type=int, default=224, help='evaluation crop (224)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a full pickle load if weights_only=True refuses the file')
    p.add_argument('--json', default=None, help='also write the result here')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.size < 32 or args.size % 32:
        raise SystemExit(f'--size must be a positive multiple of 32, got {args.size}')
    torch.manual_seed(0)
    image_path = args.image or default_image()
    image = load_image(image_path, args.size)
    if args.checkpoint:
        state = load_official_state(args.checkpoint, args.trust_checkpoint)
        source = args.checkpoint
    else:
        state = random_official_aff_state_dict(args.arch, 1000, seed=args.random_official_weights)
        source = f'random official-layout weights (seed {args.random_official_weights})'
    res = top5(args.arch, state, image)
    print(f'AFF-{args.arch}, {source}, image {osp.basename(image_path)} at {args.size}')
    for rules in ('exact', 'official'):
        cells = ', '.join(f'{i} ({p:.3f})' for i, p in res[rules]['top5'])
        print(f'  rules={rules:<8}  top-5: {cells}')
    print(f'  max |logit(exact) - logit(official)| = {res["max_abs_logit_diff"]:.4f} '
          f'(logits up to {res["logit_scale"]:.2f})')
    summary = dict(arch=args.arch, source=source, image=osp.basename(image_path), size=args.size,
                   exact=res['exact']['top5'], official=res['official']['top5'],
                   max_abs_logit_diff=res['max_abs_logit_diff'])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == '__main__':
    main()
