"""tools/demo.py (README command 1) end to end on a tiny set it generates itself."""
import json
import os.path as osp

import cv2
import pytest

pytestmark = pytest.mark.slow


def test_demo_generates_data_trains_evaluates_and_draws(tmp_path, repo_root, tool, det_config):
    data_root = str(tmp_path / 'synthetic_coco') + '/'   # missing: the demo generates it
    cfg = det_config(tmp_path, data_root, repo_root)
    work = tmp_path / 'work'
    proc = tool(['tools/demo.py', '--config', cfg, '--work-dir', str(work), '--iters', '2',
                 '--num-train', '8', '--num-val', '4', '--num-vis', '2'])
    assert osp.isfile(osp.join(data_root, 'annotations', 'instances_train2017.json'))
    summary = json.load(open(work / 'demo_summary.json'))
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_s', 'coco/bbox_mAP_m', 'coco/bbox_mAP_l'):
        assert 0.0 <= summary['metrics'][key] <= 1.0
    assert osp.isfile(summary['checkpoint']) and summary['checkpoint'].endswith('iter_2.pth')
    png = cv2.imread(summary['predictions_png'])
    assert png is not None and png.shape[0] >= 128 and png.shape[1] >= 2 * 128
    assert '[demo] bbox mAP' in proc.stdout and 'AP_s' in proc.stdout
