"""Every real-data Cityscapes config (``configs/**/*cityscapes-512x1024.py``) evaluates with
mmseg's IoUMetric AND the official cityscapesscripts evaluation (CityscapesMetric) for val
and test; both come from configs/_base_/cityscapes_metrics.py."""
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(ROOT.glob('configs/**/*cityscapes-512x1024.py'))


def test_configs_found():
    # the four families of the issue: FINE, FPN, (BAFF-)SkipNet, AFF
    dirs = {p.parent.name for p in CONFIGS}
    assert {'fine', 'fpn', 'baff_skipnet', 'autofocusformer'} <= dirs
    assert len(CONFIGS) >= 16   # the Semantic FPN R-50 baseline once, in configs/fpn/


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


def test_tools_test_reports_iou_and_cityscapes_metrics(tiny_cityscapes, tmp_path):
    """tools/test.py with a real-data config (SkipNet phase 2) on a tiny Cityscapes-layout
    set: both IoUMetric (mIoU, aAcc, mAcc) and CityscapesMetric (cityscapes's mIoU from
    cityscapesscripts) are reported, in [0, 100]."""
    import json

    import torch
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from tests.conftest import run_tool

    cfg_path = ('configs/baff_skipnet/'
                'skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py')
    cfg = Config.fromfile(str(ROOT / cfg_path))
    init_default_scope('mmseg')
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    work = tmp_path / 'work'
    run_tool(['tools/test.py', cfg_path, str(ckpt), '--work-dir', str(work),
              '--cfg-options',
              f'test_dataloader.dataset.data_root={tiny_cityscapes}',
              'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
              f'test_evaluator.1.output_dir={tmp_path / "format"}',
              'model.backbone.init_cfg=None'], timeout=300)
    logs = sorted(work.glob('*/*.json'))
    assert logs, f'no json log in {work}'
    res = json.loads(logs[-1].read_text().strip().splitlines()[-1])
    for key in ('mIoU', 'aAcc', 'mAcc'):  # IoUMetric, in percent
        assert key in res, f'{key} missing from {sorted(res)}'
        assert 0.0 <= float(res[key]) <= 100.0, (key, res[key])
    # CityscapesMetric (cityscapesscripts' evaluatePixelLevelSemanticLabeling), fractions
    for key in ('averageScoreCategories', 'averageScoreInstCategories'):
        key = next((k for k in res if k.endswith(key)), key)
        assert key in res, f'{key} missing from {sorted(res)}'
        assert 0.0 <= float(res[key]) <= 1.0, (key, res[key])
    # its prediction files are removed after evaluation (keep_results=False)
    assert not (tmp_path / 'format').exists() or not any((tmp_path / 'format').iterdir())
