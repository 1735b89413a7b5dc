"""Shared fixtures: tiny synthetic datasets and a runner for our command-line tools."""
import os
import os.path as osp
import subprocess
import sys
from typing import List, Optional

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


@pytest.fixture(scope='session')
def repo_root() -> str:
    return ROOT


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
    env.setdefault('OMP_NUM_THREADS', '2')
    env['PYTHONWARNINGS'] = 'ignore'
    env['PYTHON'] = sys.executable  # used by tools/dist_*.sh
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
