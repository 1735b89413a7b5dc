"""Every real-data Cityscapes config (``configs/**/*cityscapes-512x1024.py``) evaluates with
mmseg's IoUMetric AND the official cityscapesscripts evaluation (CityscapesMetric) for val
and test (issue 13); both come from configs/_base_/cityscapes_metrics.py."""
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob('configs/**/*cityscapes-512x1024.py'))


def test_configs_found():
    # the four families of the issue: FINE, FPN, (BAFF-)SkipNet, AFF
    dirs = {p.parent.name for p in CONFIGS}
    assert {'fine', 'fpn', 'baff_skipnet', 'autofocusformer'} <= dirs
    assert len(CONFIGS) >= 17


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_val_and_test_have_iou_and_cityscapes_metric(path):
    cfg = Config.fromfile(str(path))
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg[key]
        assert isinstance(ev, (list, tuple)), f'{path.name}: {key} must be a list, got {ev}'
        types = [m['type'] for m in ev]
        assert types == ['IoUMetric', 'CityscapesMetric'], f'{path.name}: {key} = {types}'
        assert 'mIoU' in ev[0]['iou_metrics']
        cs = ev[1]
        assert cs['output_dir'], f'{path.name}: CityscapesMetric needs an output_dir'
        # evaluation against GT, not a format-only submission run
        assert cs.get('format_only', False) is False
    # the Cityscapes dataset with its GT (CityscapesMetric reads gtFine/*_labelTrainIds.png)
    assert cfg.test_dataloader.dataset.type == 'CityscapesDataset'
