"""tools/aff_synthetic_train.py runs end to end (a few steps) and reports its statistics."""
import importlib.util
import os.path as osp

import pytest
import torch


pytestmark = pytest.mark.usefixtures('single_thread')

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'aff_synthetic_train', osp.join(ROOT, 'tools', 'aff_synthetic_train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_synthetic_batch_labels_and_token_mask():
    tool = _tool()
    x, y, mask = tool.make_batch(torch.Generator().manual_seed(0), 16, 64)
    assert x.shape == (16, 3, 64, 64) and mask.shape == (16, 256)
    red = (x[:, 0] > 1.2) & (x[:, 1] < -1.2)  # (0.9 - 0.5) / 0.25 = 1.6, (0.1 - 0.5) / 0.25
    assert ((red.sum((1, 2)) > 0).long() <= y).all() and (y <= 2).all()
    # every square covers 2 or 3 tokens per side; two squares: 4..18 tokens
    assert (mask.sum(1) >= 4).all() and (mask.sum(1) <= 18).all()


def test_short_run_reports_kept_token_statistics(capsys):
    out = _tool().main(['--steps', '4', '--batch', '4', '--log-every', '2'])
    assert len(out['history']) == 4 and all(l > 0 for l in out['history'])
    assert out['before']['kept'].shape == (128, 64)  # 64x64 -> 256 tokens -> 64 kept
    assert 0.0 <= out['changed'] <= 1.0
    printed = capsys.readouterr().out
    assert 'differ from those kept at initialisation' in printed
