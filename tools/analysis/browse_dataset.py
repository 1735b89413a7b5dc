"""Draw a config's dataset samples with their annotations, after the training pipeline.

    python tools/analysis/browse_dataset.py CONFIG --output-dir DIR [--split train|val|test]
        [--max-images N] [--show] [--show-interval S] [--cfg-options k=v ...]

mmdet's and mmseg's ``tools/analysis_tools/browse_dataset.py`` for either framework (picked
from the config's ``default_scope``): boxes and masks (mmdet) or the semantic map (mmseg)
are drawn by the config's visualizer on the image as the pipeline delivers it (resized,
flipped, ...). One PNG per sample in ``--output-dir``, written atomically.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', help='config file')
    p.add_argument('--output-dir', help='directory for the drawn samples')
    p.add_argument('--split', choices=['train', 'val', 'test'], default='train',
                   help='which dataloader of the config to browse')
    p.add_argument('--max-images', type=int, default=None, help='stop after N samples')
    p.add_argument('--show', action='store_true', help='also show each sample in a window')
    p.add_argument('--show-interval', type=float, default=2, help='seconds per shown image')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the config, xxx=yyy format')
    args = p.parse_args(argv)
    if args.output_dir is None and not args.show:
        p.error('give --output-dir DIR (or --show)')
    if args.max_images is not None and args.max_images < 1:
        p.error(f'--max-images must be >= 1, got {args.max_images}')
    return args


def _det_sample_for_drawing(data_sample):
    """mmdet's browse_dataset: box tensors, masks as a bool ndarray."""
    from mmdet.structures.bbox import BaseBoxes
    from mmdet.structures.mask import BitmapMasks, PolygonMasks
    gt = data_sample.gt_instances
    if isinstance(gt.get('bboxes', None), BaseBoxes):
        gt.bboxes = gt.bboxes.tensor
    masks = gt.get('masks', None)
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        gt.masks = masks.to_ndarray().astype(bool)
    data_sample.gt_instances = gt
    return data_sample


def run(args) -> list:
    """Returns the list of written files."""
    from mmengine.registry import init_default_scope
    from mmengine.utils import ProgressBar

    from fusion_necks.utils.config import detect_scope, load_config
    from fusion_necks.utils.data_check import check_data_paths
    from fusion_necks.utils.inference_checks import atomic_write_image
    cfg = load_config(args.config, args.cfg_options)
    scope = detect_scope(cfg)
    init_default_scope(scope)
    loader = cfg.get(f'{args.split}_dataloader', None)
    if loader is None:
        raise ValueError(f'--split {args.split}: the config has no {args.split}_dataloader')
    check_data_paths(cfg, phases=(args.split,))
    registry = __import__(f'{scope}.registry', fromlist=['DATASETS', 'VISUALIZERS'])
    dataset = registry.DATASETS.build(loader.dataset)
    visualizer = registry.VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo
    n = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
    written = []
    bar = ProgressBar(n)
    for i in range(n):
        item = dataset[i]
        img = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1].copy()  # BGR -> RGB
        sample = item['data_samples'].numpy()
        if scope == 'mmdet':
            sample = _det_sample_for_drawing(sample)
        elif 'gt_sem_seg' in sample and sample.gt_sem_seg.shape != img.shape[:2]:
            # mmseg's test pipelines load the labels after Resize (kept at the original
            # size): draw on the image at the labels' size
            import mmcv
            h, w = sample.gt_sem_seg.shape
            img = mmcv.imresize(img, (w, h))
        name = osp.basename(sample.img_path)
        kwargs = dict(draw_pred=False, show=args.show, wait_time=args.show_interval)
        visualizer.add_datasample(name, img, sample, **kwargs)
        if args.output_dir:
            out = osp.join(args.output_dir, osp.splitext(name)[0] + '.png')
            atomic_write_image(visualizer.get_image(), out)
            written.append(out)
        bar.update()
    print(f'\n[browse_dataset] {scope} {args.split}: {n} samples'
          + (f' -> {args.output_dir}' if args.output_dir else ''))
    return written


def main(argv=None) -> int:
    from fusion_necks.utils.runner import run_cli
    return run_cli(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
