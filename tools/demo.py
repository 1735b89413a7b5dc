"""The quickstart, end to end on a CPU: data, training, evaluation, a picture.

    python tools/demo.py                    # RetinaNet R-18 + FPN on synthetic COCO (~12 min)
    python tools/demo.py --neck fine        # ... with another neck (one word)
    python tools/demo.py --recipe long      # the 1500-iteration recipe (~55 min)
    python tools/demo.py --task seg         # Semantic FPN R-18 on synthetic Cityscapes

Generates the synthetic set if it is missing, trains the quickstart config
``configs/quickstart/retinanet_r18_<neck>_synth-coco-fast.py`` (``--recipe long``:
``retinanet_r18_<neck>_synth-coco.py``; ``--task seg``:
``sem-fpn_r18_<neck>_synth-cityscapes.py``) with a progress bar and ETA, evaluates the
final checkpoint through the real metric (``CocoMetric``: bbox mAP, AP_s/AP_m/AP_l;
``IoUMetric`` + ``CityscapesMetric``: mIoU), and writes a PNG of predictions on
validation images next to the checkpoint. ``make demo`` runs this after the install.
"""
import argparse
import glob
import json
import os.path as osp
import runpy
import sys
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

TASKS = {
    'det': dict(pattern=dict(fast='configs/quickstart/retinanet_r18_{neck}_synth-coco-fast.py',
                             long='configs/quickstart/retinanet_r18_{neck}_synth-coco.py'),
                num_train=1000, num_val=200),
    'seg': dict(pattern=dict(long='configs/quickstart/sem-fpn_r18_{neck}_synth-cityscapes.py'),
                num_train=200, num_val=40),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--task', choices=sorted(TASKS), default='det')
    p.add_argument('--neck', default='fpn', help='neck of the quickstart config (one word)')
    p.add_argument('--recipe', choices=('fast', 'long'), default='fast',
                   help='detection: fast (900 iterations of batch 4, 64 channels) or long '
                        '(1500 iterations, 128 channels); segmentation has one recipe')
    p.add_argument('--config', default=None, help='any quickstart config instead of --neck')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--iters', type=int, default=None, help='override the training length')
    p.add_argument('--num-train', type=int, default=None)
    p.add_argument('--num-val', type=int, default=None)
    p.add_argument('--num-vis', type=int, default=8, help='validation images in the PNG')
    p.add_argument('--fusion-stats', type=int, default=None, metavar='N',
                   help='log FINE/ASFF/BAFF statistics every N iterations (FusionStatsHook)')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE')
    return p.parse_args(argv)


def quickstart_config(task: str, neck: str, recipe: str = 'fast') -> str:
    patterns = TASKS[task]['pattern']
    pattern = patterns.get(recipe, patterns['long'])   # segmentation: its one recipe
    path = osp.join(ROOT, pattern.format(neck=neck))
    if not osp.isfile(path):
        avail = sorted(osp.basename(p) for p in glob.glob(osp.join(ROOT, pattern.format(neck='*'))))
        head, tail = osp.basename(pattern).split('{neck}')
        necks = sorted(a[len(head):-len(tail)] for a in avail)
        raise SystemExit(f'error: no quickstart config for neck {neck!r} ({path}); '
                         f'available necks for --task {task}: {", ".join(necks)}')
    return path


def ensure_data(task: str, data_root: str, num_train: int, num_val: int) -> None:
    t = time.time()
    if task == 'det':
        from fusion_necks.datasets.synthetic_coco import generate_synthetic_coco
        if osp.exists(osp.join(data_root, 'annotations', 'instances_val2017.json')):
            return
        print(f'[demo] generating synthetic COCO ({num_train} train / {num_val} val) in {data_root}')
        generate_synthetic_coco(data_root, num_train=num_train, num_val=num_val, seed=0)
    else:
        from fusion_necks.datasets.synthetic_cityscapes import generate_synthetic_cityscapes
        if osp.exists(osp.join(data_root, 'val.txt')):
            return
        print(f'[demo] generating synthetic Cityscapes ({num_train} train / {num_val} val) in {data_root}')
        generate_synthetic_cityscapes(data_root, num_train=num_train, num_val=num_val, seed=0)
    print(f'[demo] data ready in {time.time() - t:.0f} s')


def draw_predictions(runner, cfg, scope: str, out_png: str, num: int) -> None:
    """Predictions (and ground truth) on the first ``num`` validation images, one PNG."""
    import mmcv
    import numpy as np
    import torch
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import VISUALIZERS

    model = runner.model
    model.eval()
    dataset = runner.test_dataloader.dataset
    vis_cfg = dict(cfg.visualizer, name=f'demo_{int(time.time() * 1e6)}', vis_backends=None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.dataset_meta = dataset.metainfo
    tiles = []
    pipeline = Compose(dataset.pipeline.transforms)
    for i in range(min(num, len(dataset))):
        info = dataset.get_data_info(i)
        data = pseudo_collate([pipeline(dict(info))])
        with torch.no_grad():
            sample = model.test_step(data)[0]
        img = mmcv.imread(info['img_path'], channel_order='rgb')
        if scope == 'mmdet':
            visualizer.add_datasample('pred', img, sample, draw_gt=True, show=False,
                                      pred_score_thr=0.3)
        else:
            visualizer.add_datasample('pred', img, sample, draw_gt=True, show=False, with_labels=False)
        tiles.append(visualizer.get_image())
    if not tiles:
        return
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    cols = 2 if len(tiles) > 1 else 1
    rows = (len(tiles) + cols - 1) // cols
    grid = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    mmcv.imwrite(mmcv.rgb2bgr(grid), out_png)


def own_format_dir(cfg, work_dir: str) -> None:
    """Point every ``CityscapesMetric`` of the test evaluator at ``WORK_DIR/format_results``.

    The quickstart configs give the metric a fixed folder under ``work_dirs/``; two runs that
    evaluate side by side (``compare_necks.py --jobs 2``) would write their PNGs into the same
    folder and cityscapesscripts would score the mixture."""
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, (list, tuple)) \
        else [cfg.test_evaluator]
    for ev in evaluators:
        if 'Cityscapes' in str(ev.get('type', '')):
            ev['output_dir'] = osp.join(work_dir, 'format_results')


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    task = TASKS[args.task]
    config = osp.abspath(args.config) if args.config else quickstart_config(args.task, args.neck, args.recipe)
    stem = osp.splitext(osp.basename(config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', 'demo', stem)
    # the synthetic set goes where the config expects it (data_root of its train set)
    from fusion_necks.utils.config import dataset_cfgs, load_config, parse_cfg_options
    cfg = load_config(config, parse_cfg_options(args.cfg_options))
    data_root = dataset_cfgs(cfg.train_dataloader)[0]['data_root']
    ensure_data(args.task, data_root, args.num_train or task['num_train'],
                args.num_val or task['num_val'])

    from fusion_necks.utils.runner import USER_ERRORS, build_runner, report_user_error
    train_tool = runpy.run_path(osp.join(ROOT, 'tools', 'train.py'))
    test_tool = runpy.run_path(osp.join(ROOT, 'tools', 'test.py'))

    opts = list(args.cfg_options)
    if args.iters:
        opts += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                 f'default_hooks.checkpoint.interval={args.iters}']
    extra = ['--cfg-options', *opts] if opts else []

    print(f'[demo] training {osp.relpath(config, ROOT)} -> {work_dir}')
    train_args = train_tool['parse_args']([config, '--work-dir', work_dir, '--no-validate', *extra])
    def configure():
        cfg, scope = train_tool['configure'](train_args)
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(type='ProgressBarHook')]
        if args.fusion_stats:
            cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
                dict(type='FusionStatsHook', interval=args.fusion_stats)]
        return cfg, scope

    try:
        runner, cfg, scope = build_runner(configure)
    except USER_ERRORS as e:
        return report_user_error(e)
    t_train = time.time()
    runner.train()
    train_s = time.time() - t_train
    ckpt = osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
    if not osp.isfile(ckpt):
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()

    print(f'[demo] evaluating {ckpt}')
    test_args = test_tool['parse_args']([config, ckpt, '--work-dir', work_dir, *extra])
    def configure_test():
        cfg, scope = test_tool['configure'](test_args)
        own_format_dir(cfg, work_dir)
        return cfg, scope

    tester, tcfg, _ = build_runner(configure_test)
    metrics = tester.test()
    png = osp.join(work_dir, 'predictions.png')
    draw_predictions(tester, tcfg, scope, png, args.num_vis)

    total_s = time.time() - t_start
    summary = dict(config=osp.relpath(config, ROOT), checkpoint=ckpt, predictions_png=png,
                   train_seconds=round(train_s, 1), total_seconds=round(total_s, 1),
                   metrics={k: float(v) for k, v in metrics.items()})
    stats = [h.history for h in runner.hooks if type(h).__name__ == 'FusionStatsHook']
    if stats:
        summary['fusion_stats'] = stats[0]
    with open(osp.join(work_dir, 'demo_summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n' + '=' * 72)
    print(f'[demo] {summary["config"]}')
    if scope == 'mmdet':
        m = metrics
        print(f"[demo] bbox mAP {m.get('coco/bbox_mAP', float('nan')):.3f}  "
              f"AP50 {m.get('coco/bbox_mAP_50', float('nan')):.3f}  "
              f"AP_s {m.get('coco/bbox_mAP_s', float('nan')):.3f}  "
              f"AP_m {m.get('coco/bbox_mAP_m', float('nan')):.3f}  "
              f"AP_l {m.get('coco/bbox_mAP_l', float('nan')):.3f}")
    else:
        print(f"[demo] mIoU {metrics.get('mIoU', float('nan')):.2f}  "
              f"aAcc {metrics.get('aAcc', float('nan')):.2f}  "
              f"cityscapes averageScoreCategories "
              f"{metrics.get('cityscapes/averageScoreCategories', float('nan')):.3f}")
    print(f'[demo] checkpoint  {ckpt}')
    print(f'[demo] predictions {png}')
    print(f'[demo] train {train_s / 60:.1f} min, total {total_s / 60:.1f} min')
    print('=' * 72)
    return 0


if __name__ == '__main__':
    sys.exit(main())
