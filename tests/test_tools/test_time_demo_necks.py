"""tools/analysis/time_demo_necks.py: reading mmengine's logged iteration time."""
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
spec = importlib.util.spec_from_file_location(
    'time_demo_necks', osp.join(ROOT, 'tools', 'analysis', 'time_demo_necks.py'))
tdn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tdn)


def _scalars(folder, records):
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in records) + '\n')


def test_reads_training_time_not_the_evaluation_folder(tmp_path):
    _scalars(tmp_path / '20261207_100000' / 'vis_data',
             [dict(loss=1.0, time=1.9, iter=10), dict(loss=0.9, time=0.9, iter=20),
              dict(loss=0.8, time=0.7, iter=30), dict(loss=0.8, time=0.8, iter=40)])
    # the evaluation's own, later folder logs metrics only
    _scalars(tmp_path / '20261207_110000' / 'vis_data', [{'coco/bbox_mAP': 0.2, 'step': 60}])
    # the mean of the windows after the start-up iterations
    assert tdn.logged_seconds_per_iter(str(tmp_path), 20) == pytest.approx(0.75)
    assert tdn.logged_seconds_per_iter(str(tmp_path), 10) == pytest.approx(0.8)
    with pytest.raises(ValueError, match='no iteration after --skip 40'):
        tdn.logged_seconds_per_iter(str(tmp_path), 40)


def test_missing_logs_and_estimate(tmp_path):
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        tdn.logged_seconds_per_iter(str(tmp_path), 20)
    est = tdn.estimate(dict(train_seconds=50.0, total_seconds=74.0), 0.8, 900)
    assert est == dict(sec_per_iter=0.8, train_min=12.0, eval_min=0.4, total_min=12.4)
    assert '| `fpn` | 0.800 | 12.0 min | 0.4 min | 12.4 min |' in tdn.markdown({'fpn': est})
