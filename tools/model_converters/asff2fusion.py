"""Convert an official YOLOv3-ASFF checkpoint (GOATmessi8/ASFF) to ``ASFFNeck`` weights.

    python tools/model_converters/asff2fusion.py SRC DST [--prefix neck.1.]

Only the three fusion modules (``level_{0,1,2}_fusion``) are converted; they load
with ``strict=True`` into the ASFFNeck ``asff_official`` of
``configs/_base_/necks/asff_official.py`` (``asff_official_rfb`` for the ASFF* /
``--rfb`` checkpoints, ``asff_official_mobile`` for MobileNetV2). The name
mapping is documented in ``fusion_necks/necks/asff_official_weights.py`` and
``docs/asff.md``. ``--prefix`` puts the weights where the neck sits in a detector
(``neck.1.`` when it is the second entry of ``neck=[...]``); the output is a
``{'state_dict': ..., 'meta': ...}`` checkpoint that mmengine's ``load_checkpoint``
reads (use ``strict=False`` for a whole detector: the rest is not converted).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Official YOLOv3-ASFF weights -> ASFFNeck')
    p.add_argument('src', help='official checkpoint (.pth)')
    p.add_argument('dst', help='output checkpoint')
    p.add_argument('--prefix', default='', help="prefix for the new names, e.g. 'neck.1.'")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from fusion_necks.necks.asff_official_weights import convert_official_asff, unwrap_checkpoint

    # the official checkpoints are plain state dicts (sometimes under 'model'); a
    # trusted file with other pickled objects needs weights_only=False
    try:
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001 - report which load failed
        print(f'weights-only load failed ({type(err).__name__}); loading {args.src} as a '
              'trusted pickle')
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    converted, unused = convert_official_asff(unwrap_checkpoint(checkpoint), prefix=args.prefix)
    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    torch.save({'state_dict': converted,
                'meta': {'converted_from': osp.basename(args.src),
                         'converter': 'fusion_necks asff2fusion'}}, args.dst)
    print(f'converted {len(converted)} tensors of the ASFF modules to {args.dst}; '
          f'{len(unused)} tensors outside the fusion modules were left out')
    return converted, unused


if __name__ == '__main__':
    main()
