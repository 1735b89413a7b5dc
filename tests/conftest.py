"""Shared fixtures: tiny synthetic datasets and a runner for our command-line tools."""
import os
import os.path as osp
import subprocess
import sys
import textwrap
from typing import List, Optional

import pytest
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))

# `make test` runs the files on pytest-xdist workers (`-n auto --dist loadfile`): most of
# the suite's time is single-threaded (interpreter start-up and imports of the tools it
# runs as subprocesses, config parsing), which one process cannot spread over the cores.
# Each worker, and each tool it starts, then gets its share of the cores' threads, so
# that N workers do not oversubscribe the machine N-fold.
XDIST_WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
THREADS = max(1, (os.cpu_count() or 1) // XDIST_WORKERS)
if XDIST_WORKERS > 1:
    torch.set_num_threads(THREADS)


@pytest.fixture(scope='session')
def repo_root() -> str:
    return ROOT


def _memoize_external_config_index() -> None:
    """mmengine resolves every ``mmdet::``/``mmseg::`` base by parsing *all* of that
    package's metafiles (~700 YAML documents, ~0.4 s) on each call; this suite loads
    configs hundreds of times, so within this process the index is parsed once per
    package. Same lookups and errors as mmengine's ``_get_cfg_metainfo`` (tools run as
    subprocesses keep the original)."""
    import functools

    try:
        from mmengine.config import utils as cfg_utils
    except ImportError:  # pragma: no cover - the pinned stack has mmengine
        return
    original = cfg_utils._get_cfg_metainfo
    if getattr(original, '_fusion_necks_memoized', False):
        return

    @functools.lru_cache(maxsize=None)
    def index(package_path: str) -> dict:
        # the loop of mmengine 0.10's _get_cfg_metainfo: the first entry of a name wins
        meta_index = cfg_utils.load(osp.join(package_path, '.mim', 'model-index.yml'))
        cfg_dict = {}
        for meta_path in meta_index['Import']:
            for model_cfg in cfg_utils.load(osp.join(package_path, '.mim', meta_path))['Models']:
                if 'Config' in model_cfg:
                    cfg_dict.setdefault(model_cfg['Config'].partition('/')[-1], model_cfg)
        return cfg_dict

    def memoized(package_path: str, cfg_path: str) -> dict:
        import copy
        cfg_dict = index(package_path)
        if cfg_path not in cfg_dict:
            raise ValueError(f'Expected configs: {cfg_dict.keys()}, but got {cfg_path}')
        return copy.deepcopy(cfg_dict[cfg_path])

    memoized._fusion_necks_memoized = True
    memoized.original = original   # tests/test_configs/test_metafiles.py compares the two
    cfg_utils._get_cfg_metainfo = memoized


_memoize_external_config_index()


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> str:
    """16 train / 8 val synthetic COCO images of 96-128 px (official layout)."""
    from fusion_necks.datasets.synthetic_coco import generate_synthetic_coco
    root = str(tmp_path_factory.mktemp('synthetic_coco'))
    generate_synthetic_coco(root, num_train=16, num_val=8, seed=1,
                            image_size=(96, 128, 96, 128), num_objects=(1, 4), max_size=80)
    return root + '/'


@pytest.fixture(scope='session')
def tiny_cityscapes(tmp_path_factory) -> str:
    """6 train / 4 val synthetic Cityscapes scenes of 128x256 px (official layout)."""
    from fusion_necks.datasets.synthetic_cityscapes import generate_synthetic_cityscapes
    root = str(tmp_path_factory.mktemp('synthetic_cityscapes'))
    generate_synthetic_cityscapes(root, num_train=6, num_val=4, seed=1, size=(128, 256))
    return root + '/'


def tool_env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', str(min(2, THREADS)))
    env['PYTHONWARNINGS'] = 'ignore'
    env['PYTHON'] = sys.executable  # used by tools/dist_*.sh
    # no pretrained weights exist here: real-data configs train from scratch in tests
    env.setdefault('FUSION_NECKS_OFFLINE', '1')
    return env


def run_tool(args: List[str], cwd: Optional[str] = None, timeout: int = 600,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (or a shell script) from the repo root, as a user would."""
    cmd = (['bash'] if args[0].endswith('.sh') else [sys.executable]) + list(args)
    proc = subprocess.run(cmd, cwd=cwd or ROOT, env=tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} exited with {proc.returncode}\n'
                             f'--- stdout (tail) ---\n{proc.stdout[-4000:]}\n'
                             f'--- stderr (tail) ---\n{proc.stderr[-4000:]}')
    return proc


@pytest.fixture(scope='session')
def tool():
    return run_tool


def tiny_det_config(tmp_path, data_root, repo_root, name='tiny_retinanet.py', extra='',
                    base='retinanet_r18_fpn_synth-coco.py'):
    """A quickstart detector config (``configs/quickstart/<base>``) on ``data_root`` at
    128 px, 2 iterations, logging every one."""
    cfg = textwrap.dedent(f'''
        _base_ = '{repo_root}/configs/quickstart/{base}'
        data_root = '{data_root}'
        img_scale = (128, 128)
        # an untrained detector scores every box ~0.01: keep them so that the metric
        # has predictions to evaluate
        model = dict(test_cfg=dict(score_thr=0.0, max_per_img=20))
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs')
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=img_scale, keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                  'img_shape', 'scale_factor'))
        ]
        train_dataloader = dict(batch_size=2, num_workers=0,
                                dataset=dict(data_root=data_root, pipeline=train_pipeline))
        val_dataloader = dict(batch_size=2, num_workers=0,
                              dataset=dict(data_root=data_root, pipeline=test_pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
        test_evaluator = val_evaluator
        train_cfg = dict(max_iters=2, val_interval=2)
        param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=100)]
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=3))
        ''') + textwrap.dedent(extra)
    path = tmp_path / name
    path.write_text(cfg)
    return str(path)


@pytest.fixture(scope='session')
def det_config():
    """``det_config(tmp_path, data_root, repo_root, extra='')`` writes a tiny detector config."""
    return tiny_det_config


def _restoring_default_scope():
    from mmengine.registry import DefaultScope
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


# mmengine builds from the *current default scope's* registry, so a scope left behind
# by one test or module fixture (``init_default_scope('mmdet')``) silently changes what a
# later test builds with ``mmseg.registry.MODELS`` (mmdet's ``CrossEntropyLoss``, our
# mmdet ``FINEFPN``). Autouse fixtures run first within their scope, so these two undo
# whatever a test, or a module-scoped fixture, leaves behind.
_scope_per_module = pytest.fixture(scope='module', autouse=True)(_restoring_default_scope)
_scope_per_test = pytest.fixture(autouse=True)(_restoring_default_scope)


@pytest.fixture(scope='module')
def single_thread():
    """One intra-op thread for a module of small-tensor tests (OpenMP oversubscription on a
    shared 2-core machine costs more than it gives); restored afterwards. Use with
    ``pytestmark = pytest.mark.usefixtures('single_thread')``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
