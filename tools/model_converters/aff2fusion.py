"""Convert an official AutoFocusFormer checkpoint to fusion-necks ``AutoFocusFormerNet`` weights.

    python tools/model_converters/aff2fusion.py SRC DST [--rel-pos-order paper|official]

SRC is an ImageNet checkpoint of apple/ml-autofocusformer (``.pth``, weights under
``model``) or a segmentation checkpoint of apple/ml-autofocusformer-segmentation
(Detectron2 ``.pkl`` or ``.pth``; only the ``backbone.*`` tensors are converted). The
name mapping and the two tensor reorderings (per-head ``kv`` rows; the input columns of
the relative-position layers when converting to the paper's feature order) are
documented in ``fusion_necks/backbones/aff_official_weights.py``.

The output ``{'state_dict': ..., 'meta': ...}`` loads with ``strict=True`` into

* ``AutoFocusFormerNet(arch=..., num_classes=1000, out_indices=())`` for an ImageNet file,
* ``AutoFocusFormerNet(arch=...)`` (four output norms) for a segmentation backbone,

and into the registered backbone through
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` (an ImageNet file then leaves only
the output norms at their initial values, as the official segmentation training does).
``--rel-pos-order`` must match the model's ``rel_pos_order`` (default ``paper``).
Remember the official Base-384 checkpoint uses ``cluster_size=24, nbhd_size=144``.

Loading is safe by default: ``.pth`` files load with ``weights_only=True`` and ``.pkl``
files with an unpickler that only rebuilds numpy arrays and dicts. Official ``.pth``
files also pickle their yacs config, which is refused with a one-line message; pass
``--trust-checkpoint`` for a file you trust to allow the full pickle load.
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
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='allow a full pickle load of SRC (runs code stored in the file)')
    return p.parse_args(argv)


#: What a Detectron2 ``.pkl`` of numpy weights needs to be rebuilt, and nothing else.
_PKL_ALLOWED = {
    ('collections', 'OrderedDict'), ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', '_reconstruct'), ('numpy._core.multiarray', 'scalar'),
}


class _WeightsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _PKL_ALLOWED:
            raise pickle.UnpicklingError(f'{module}.{name} is not a numpy weight type')
        return super().find_class(module, name)


def load_source(path: str, trust: bool = False):
    import torch
    if not osp.isfile(path):
        raise SystemExit(f'src {path!r} does not exist')
    try:
        if path.endswith('.pkl'):
            with open(path, 'rb') as f:
                if trust:
                    return pickle.load(f, encoding='latin1')
                return _WeightsUnpickler(f, encoding='latin1').load()
        return torch.load(path, map_location='cpu', weights_only=not trust)
    except pickle.UnpicklingError as err:
        if trust:
            raise
        raise SystemExit(f'{path}: refused by the weights-only load '
                         f'({str(err).splitlines()[0]}); if you trust the file, '
                         f'pass --trust-checkpoint') from None


def main(argv=None):
    args = parse_args(argv)
    import torch

    from fusion_necks.backbones.aff_official_weights import convert_official_aff, unwrap_checkpoint

    state = unwrap_checkpoint(load_source(args.src, args.trust_checkpoint))
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
