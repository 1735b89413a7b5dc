"""Train a detector (mmdet config) or a segmentor (mmseg config).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]

The same command line as mmdet's and mmseg's ``tools/train.py``; the framework is
picked from the config's ``default_scope``. Before building the Runner it applies
``fusion_necks.compat`` (checkpoint loading on torch >= 2.6, pkg_resources, AMP on a
CPU, persistent workers, offline pretrained weights), checks that mmcv's compiled
ops load and that the dataset exists, and explains unregistered model types.
"""
import argparse
import os
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic mixed precision training (GPU only; '
                        'on a CPU it warns and trains in fp32)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest '
                        'checkpoint in the work_dir')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument('--offline', action='store_true',
                        help='initialise from scratch where a pretrained checkpoint named by '
                        'the config has no local copy (default: that is an error); also '
                        'FUSION_NECKS_OFFLINE=1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, xxx=yyy format')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def configure(args):
    """Build the final config from the command line (testable without training)."""
    from fusion_necks.compat import apply_config_compat
    from fusion_necks.utils.config import detect_scope, load_config, set_work_dir
    from fusion_necks.utils.data_check import check_data_paths

    cfg = load_config(args.config, args.cfg_options)
    scope = detect_scope(cfg)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    apply_config_compat(cfg, amp=args.amp, offline=args.offline or None)

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr', None) and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    phases = ['train'] + (['val'] if cfg.get('val_cfg', None) else [])
    check_data_paths(cfg, phases)
    return cfg, scope


def main(argv=None):
    args = parse_args(argv)
    from fusion_necks.compat import UntrustedCheckpointError
    from fusion_necks.utils.runner import USER_ERRORS, build_runner, report_user_error
    try:
        runner, cfg, scope = build_runner(lambda: configure(args))
    except USER_ERRORS as e:
        return report_user_error(e)
    try:
        runner.train()  # --resume / load_from read the checkpoint here
    except UntrustedCheckpointError as e:
        return report_user_error(e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
