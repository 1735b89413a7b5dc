"""Run a detector or segmentor config + checkpoint on one image and write the visualisation.

    python tools/image_demo.py IMAGE CONFIG CKPT --out-file X.png [--device cpu]
        [--score-thr 0.3] [--trust-checkpoint] [--cfg-options k=v ...]

Built on mmdet's ``DetInferencer`` / mmseg's ``MMSegInferencer`` and the config's
visualizer, as mmdet's and mmseg's ``demo/image_demo.py`` are; the framework is picked from
the config's ``default_scope``. Checks before anything is built or written:

- IMAGE must exist and be readable; a grayscale image is repeated to 3 channels and an
  alpha channel dropped (with a log line), any size is accepted (the config's test
  pipeline resizes it).
- CKPT is loaded with ``torch.load(weights_only=True)`` (checkpoints from our
  ``tools/train.py`` load that way); ``--trust-checkpoint`` allows a full unpickle of a file
  you trust. Its state-dict keys must match CONFIG's model (a segmentor checkpoint given to
  a detector config is an error naming both files).
- The PNG is written to a temporary file next to ``--out-file`` and renamed, so an
  interrupted run leaves no half-written image.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('image', help='image file')
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file (e.g. work_dirs/<cfg>/iter_N.pth)')
    p.add_argument('--out-file', required=True, help='where to write the visualisation (.png)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.3, help='detection score threshold')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='load CKPT with weights_only=False (only for files you trust)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the config, xxx=yyy format')
    return p.parse_args(argv)


def run(args) -> dict:
    """Returns ``dict(task=..., out_file=..., predictions=...)``."""
    from fusion_necks.utils.config import detect_scope, load_config
    from fusion_necks.utils.inference_checks import (atomic_write_image, check_file,
                                                     load_checkpoint_checked, load_image_rgb3)
    if not 0.0 <= args.score_thr <= 1.0:
        raise ValueError(f'--score-thr must be in [0, 1], got {args.score_thr}')
    check_file(args.config, 'CONFIG')
    check_file(args.checkpoint, 'CKPT')
    img = load_image_rgb3(args.image)  # BGR, what the inferencers take
    cfg = load_config(args.config, args.cfg_options)
    scope = detect_scope(cfg)
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer as Inferencer
    else:
        from mmseg.apis import MMSegInferencer as Inferencer
    inferencer = Inferencer(model=cfg, weights=None, device=args.device)
    ckpt = load_checkpoint_checked(inferencer.model, args.checkpoint, args.config,
                                   trust=args.trust_checkpoint)
    meta = (ckpt.get('meta') or {}).get('dataset_meta')
    if meta:
        if scope == 'mmseg':  # what MMSegInferencer keeps (its visualizer takes only these)
            meta = dict(classes=meta.get('classes'), palette=meta.get('palette'))
        inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = meta
    if scope == 'mmdet':
        res = inferencer(img, return_vis=True, no_save_vis=True, pred_score_thr=args.score_thr)
        vis, pred = res['visualization'][0], res['predictions'][0]
    else:
        res = inferencer(img, return_vis=True)
        vis, pred = res['visualization'], res['predictions']
    atomic_write_image(vis, args.out_file)
    print(f'[image_demo] {scope}: wrote {args.out_file} ({vis.shape[1]}x{vis.shape[0]})')
    return dict(task=scope, out_file=args.out_file, predictions=pred)


def main(argv=None) -> int:
    from fusion_necks.utils.runner import run_cli
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
