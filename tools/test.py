"""Test (and evaluate) a detector or a segmentor from a checkpoint.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR]
                         [--show] [--show-dir DIR] [--tta] [--cfg-options k=v ...]
                         [--launcher pytorch]

mmdet's and mmseg's ``tools/test.py`` command line; the framework is picked from
the config's ``default_scope``. ``--out``: for mmdet configs a ``.pkl`` with the raw
predictions (``DumpDetResults``, what ``tools/analysis/detection_errors.py`` reads);
for mmseg configs a directory for the prediction PNGs (mmseg's meaning).
"""
import argparse
import os
import sys
import warnings
from copy import deepcopy

from mmengine.config import ConfigDict, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the metrics')
    parser.add_argument('--out', type=str,
                        help='mmdet: dump predictions to a .pkl; mmseg: directory for '
                        'prediction images')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory (under work_dir/timestamp) where '
                        'painted images are saved')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--offline', action='store_true',
                        help='initialise from scratch where a pretrained checkpoint named by '
                        'the config has no local copy (default: that is an error); also '
                        'FUSION_NECKS_OFFLINE=1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _trigger_visualization(cfg, args, scope):
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError("--show/--show-dir need default_hooks.visualization="
                           "dict(type='...VisualizationHook') in the config")
    hook = hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if scope == 'mmdet':
            hook['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir


def _det_tta(cfg):
    if 'tta_model' not in cfg:
        warnings.warn('no tta_model in the config: using DetTTAModel with NMS 0.5')
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('no tta_pipeline in the config: using horizontal flip TTA')
        test_ds = cfg.test_dataloader.dataset
        while 'dataset' in test_ds:
            test_ds = test_ds['dataset']
        cfg.tta_pipeline = deepcopy(test_ds.pipeline)
        cfg.tta_pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor', 'flip', 'flip_direction'))]])
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _seg_out(cfg, out: str) -> None:
    """mmseg's ``--out``: evaluators keep their prediction PNGs in ``out``.

    mmseg's own test.py indexes ``test_evaluator`` as one dict; our segmentation configs
    list two (IoUMetric + CityscapesMetric), which write differently coded PNGs (train ids
    vs label ids) under the same file names, so with several each gets ``out/<type>``."""
    evaluators = cfg.test_evaluator
    if not isinstance(evaluators, (list, tuple)):
        evaluators = [evaluators]
    for ev in evaluators:
        kind = str(ev.get('type', 'metric')).split('.')[-1]
        ev['output_dir'] = out if len(evaluators) == 1 else os.path.join(out, kind)
        if 'Cityscapes' in kind:
            ev['keep_results'] = True


def configure(args):
    from fusion_necks.compat import apply_config_compat
    from fusion_necks.utils.config import ConfigError, detect_scope, load_config, set_work_dir
    from fusion_necks.utils.data_check import check_data_paths

    cfg = load_config(args.config, args.cfg_options)
    scope = detect_scope(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    apply_config_compat(cfg, offline=args.offline or None)
    if not os.path.isfile(args.checkpoint):
        raise ConfigError(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        _trigger_visualization(cfg, args, scope)
    if args.tta:
        if scope == 'mmdet':
            _det_tta(cfg)
        else:
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
    if args.out is not None and scope == 'mmseg':
        _seg_out(cfg, args.out)
    if args.out is not None and scope == 'mmdet' and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--out must be a .pkl file for mmdet configs, got {args.out!r}')
    check_data_paths(cfg, ['test'])
    return cfg, scope


def main(argv=None):
    args = parse_args(argv)
    from fusion_necks.utils.runner import USER_ERRORS, build_runner, report_user_error
    try:
        runner, cfg, scope = build_runner(lambda: configure(args))
    except USER_ERRORS as e:
        return report_user_error(e)
    if args.out is not None and scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    from fusion_necks.compat import UntrustedCheckpointError
    try:
        runner.test()  # the checkpoint is read here
    except UntrustedCheckpointError as e:
        return report_user_error(e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
