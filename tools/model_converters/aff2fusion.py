"""Convert an official AutoFocusFormer checkpoint to fusion-necks ``AutoFocusFormer`` weights.

    python tools/model_converters/aff2fusion.py SRC DST [--rel-pos-order paper|official]

SRC is an ImageNet checkpoint of apple/ml-autofocusformer (``.pth``, weights under
``model``) or a segmentation checkpoint of apple/ml-autofocusformer-segmentation
(Detectron2 ``.pkl`` or ``.pth``; only the ``backbone.*`` tensors are converted). The
name mapping and the two tensor reorderings (per-head ``kv`` rows; the input columns of
the relative-position layers when converting to the paper's feature order) are
documented in ``fusion_necks/backbones/aff_official_weights.py``.

The output ``{'state_dict': ..., 'meta': ...}`` loads with ``strict=True`` into

* ``AutoFocusFormer(arch=..., num_classes=1000, out_indices=())`` for an ImageNet file,
* ``AutoFocusFormer(arch=...)`` (four output norms) for a segmentation backbone,

and into the registered backbone through
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` (an ImageNet file then leaves only
the output norms at their initial values, as the official segmentation training does).
``--rel-pos-order`` must match the model's ``rel_pos_order`` (default ``paper``).
Remember the official Base-384 checkpoint uses ``cluster_size=24, nbhd_size=144``.
"""
import argparse
import os
import os.path as osp
import pickle
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Official AutoFocusFormer weights -> fusion-necks')
    p.add_argument('src', help='official checkpoint (.pth, or Detectron2 .pkl)')
    p.add_argument('dst', help='output checkpoint (.pth)')
    p.add_argument('--rel-pos-order', default='paper', choices=['paper', 'official'],
                   help='rel_pos_order of the model that will load the weights')
    return p.parse_args(argv)


def load_source(path: str):
    import torch
    if path.endswith('.pkl'):
        with open(path, 'rb') as f:
            return pickle.load(f, encoding='latin1')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - report which load failed
        print(f'weights-only load failed ({type(err).__name__}); '
              f'loading {path} as a trusted pickle')
        return torch.load(path, map_location='cpu', weights_only=False)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from fusion_necks.backbones.aff_official_weights import convert_official_aff, unwrap_checkpoint

    state = unwrap_checkpoint(load_source(args.src))
    converted, unused = convert_official_aff(state, rel_pos_order=args.rel_pos_order)
    if not converted:
        raise SystemExit(f'no AutoFocusFormer tensors found in {args.src}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': converted,
                'meta': {'converted_from': osp.basename(args.src),
                         'converter': 'fusion_necks aff2fusion',
                         'rel_pos_order': args.rel_pos_order}}, args.dst)
    print(f'converted {len(converted)} tensors to {args.dst}; {len(unused)} left out'
          + (f' (e.g. {unused[:3]})' if unused else ''))
    return converted, unused


if __name__ == '__main__':
    main()
