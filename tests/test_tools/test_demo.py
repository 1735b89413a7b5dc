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


@pytest.mark.parametrize('name', ['skipnet_mobilenet-v2_phase2_synth-cityscapes.py',
                                  'sem-fpn_r18_fpn_synth-cityscapes.py'])
def test_demo_gives_each_run_its_own_cityscapes_folder(repo_root, name):
    """Runs side by side (compare_necks --jobs 2) must not share CityscapesMetric's PNGs."""
    import runpy

    from fusion_necks.utils.config import load_config
    demo = runpy.run_path(osp.join(repo_root, 'tools', 'demo.py'))
    cfg = load_config(osp.join(repo_root, 'configs', 'quickstart', name))
    fixed = [ev['output_dir'] for ev in cfg.test_evaluator if 'Cityscapes' in ev['type']]
    assert len(fixed) == 1
    demo['own_format_dir'](cfg, 'work_dirs/compare/x/seed3')
    dirs = [ev.get('output_dir') for ev in cfg.test_evaluator]
    assert osp.join('work_dirs/compare/x/seed3', 'format_results') in dirs
    assert fixed[0] not in dirs
    assert any(ev['type'] == 'IoUMetric' for ev in cfg.test_evaluator)
