"""Run a detector or segmentor config + checkpoint on one image and write the visualisation.

    python tools/image_demo.py IMAGE CONFIG CKPT --out-file X.png [--device cpu]
        [--score-thr 0.3] [--task auto|det|seg]

Built on mmdet's ``DetInferencer`` / mmseg's ``MMSegInferencer`` and the config's visualizer,
as mmdet's and mmseg's demo/image_demo.py are. The task is inferred from the config's
``default_scope`` (mmdet / mmseg). Grayscale images are repeated to 3 channels. The checkpoint's
state-dict keys are checked against the model before loading (a detector checkpoint given to a
segmentor config is an error naming both), and the PNG is written atomically.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('image')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out-file', required=True)
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.3)
    p.add_argument('--task', choices=['auto', 'det', 'seg'], default='auto')
    return p.parse_args(argv)


def infer_task(cfg) -> str:
    scope = cfg.get('default_scope', None)
    if scope in ('mmdet', 'mmseg'):
        return 'det' if scope == 'mmdet' else 'seg'
    mtype = str(cfg.model.get('type', ''))
    if 'Encoder' in mtype or 'Segmentor' in mtype:
        return 'seg'
    raise ValueError(f'CONFIG: cannot infer the task from default_scope={scope!r} / '
                     f'model.type={mtype!r}; pass --task det or --task seg')


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint
    from fusion_necks.utils.inference_checks import (atomic_write_image, check_file,
                                                     check_state_dict_keys, load_image_rgb3)
    check_file(args.config, 'CONFIG')
    check_file(args.checkpoint, 'CKPT')
    img = load_image_rgb3(args.image)
    if not 0.0 <= args.score_thr <= 1.0:
        raise ValueError(f'--score-thr must be in [0, 1], got {args.score_thr}')
    cfg = Config.fromfile(args.config)
    task = infer_task(cfg) if args.task == 'auto' else args.task
    ckpt = torch.load(args.checkpoint, map_location='cpu', weights_only=False)
    if not isinstance(ckpt, dict):
        raise ValueError(f'CKPT {args.checkpoint!r} is not a checkpoint dict')
    sd = ckpt.get('state_dict', ckpt)
    if task == 'det':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=None, device=args.device)
    else:
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=None, device=args.device)
    check_state_dict_keys(inferencer.model.state_dict().keys(), sd.keys(), args.config,
                          args.checkpoint)
    load_checkpoint(inferencer.model, args.checkpoint, map_location='cpu')
    meta = ckpt.get('meta', {}).get('dataset_meta')
    if meta:
        inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = meta
    rgb = img  # the inferencers take BGR ndarrays
    if task == 'det':
        res = inferencer(rgb, return_vis=True, pred_score_thr=args.score_thr, no_save_vis=True)
    else:
        res = inferencer(rgb, return_vis=True)
    vis = res['visualization'][0] if isinstance(res['visualization'], list) else res['visualization']
    atomic_write_image(vis, args.out_file)
    print(f'[image_demo] task={task} wrote {args.out_file}')


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}')
