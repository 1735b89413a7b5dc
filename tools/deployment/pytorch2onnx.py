"""Export a detector's or segmentor's tensor mode to ONNX and check it with onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG [CKPT] --shape H W --out model.onnx
        [--dynamic] [--opset 17] [--verify] [--verify-shape H W ...] [--pad-divisor 32]

See fusion_necks/deployment/onnx_export.py for what the graph contains (input after
normalisation, padded to a multiple of --pad-divisor inside the graph; outputs of
``model._forward``: no NMS, raw logits) and which models cannot be exported.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None)
    p.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'))
    p.add_argument('--out', required=True)
    p.add_argument('--dynamic', action='store_true', help='symbolic batch, height, width')
    p.add_argument('--opset', type=int, default=17,
                   help='ONNX opset (minimum: FINE 14, BAFF 13, ASFF/FPN 11)')
    p.add_argument('--pad-divisor', type=int, default=32)
    p.add_argument('--verify', action='store_true', help='compare onnxruntime with PyTorch')
    p.add_argument('--verify-shape', type=int, nargs=2, action='append', default=None,
                   metavar=('H', 'W'), help='extra sizes to verify (needs --dynamic)')
    p.add_argument('--atol', type=float, default=1e-4)
    args = p.parse_args(argv)
    if args.verify_shape and not args.dynamic:
        p.error('--verify-shape needs --dynamic (a static graph takes only --shape)')
    if args.opset < 11:
        # below 11, Pad takes no runtime sizes: the in-graph padding cannot be exported
        p.error(f'--opset must be >= 11 (the in-graph padding needs a dynamic Pad), '
                f'got {args.opset}')
    return args


def run(args) -> dict:
    from fusion_necks.deployment.onnx_export import (TensorModeWrapper, check_exportable,
                                                     export_onnx, make_traceable, verify_onnx)
    from fusion_necks.utils.config import build_model, load_config
    from fusion_necks.utils.inference_checks import load_checkpoint_checked
    cfg = load_config(args.config)
    backbone = cfg.model.get('backbone', {})
    if isinstance(backbone, dict) and 'init_cfg' in backbone:
        backbone.init_cfg = None
    model = build_model(cfg).eval()
    check_exportable(model)
    if args.checkpoint:
        load_checkpoint_checked(model, args.checkpoint, args.config)
    changes = make_traceable(model)
    if changes:
        print('[pytorch2onnx] rewrites: ' + '; '.join(changes))
    wrapper = TensorModeWrapper(model, args.pad_divisor).eval()
    names = export_onnx(wrapper, args.shape, args.out, opset=args.opset, dynamic=args.dynamic)
    print(f'[pytorch2onnx] wrote {args.out} (opset {args.opset}, {len(names)} outputs)')
    report = {}
    if args.verify:
        shapes = [(1, 3, *args.shape)] + [(1, 3, *s) for s in (args.verify_shape or [])]
        report = verify_onnx(args.out, wrapper, shapes, atol=args.atol)
        for k, v in report.items():
            print(f'[pytorch2onnx] verify {k}: max abs diff {v:.3g} (atol {args.atol:g})')
    return report


def main(argv=None) -> int:
    from fusion_necks.deployment.onnx_export import ExportNotSupported
    from fusion_necks.utils.runner import run_cli
    return run_cli(run, parse_args(argv), (ExportNotSupported,))


if __name__ == '__main__':
    sys.exit(main())
