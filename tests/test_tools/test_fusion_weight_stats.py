"""tools/analysis/fusion_weight_stats.py: per-box means against a hand computation, and the
statistics of a (randomly initialised) ASFF quickstart detector on a tiny synthetic set."""
import json
import os.path as osp
import runpy

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool():
    return runpy.run_path(osp.join(ROOT, 'tools', 'analysis', 'fusion_weight_stats.py'))


def test_box_means_by_hand(tool):
    # 2 sources on a 4 x 4 map over a 32 x 32 input (stride 8: pixel centres 4, 12, 20, 28);
    # the image is the top-left 24 x 32 (rows 0-2 are inside it)
    w = np.zeros((2, 4, 4))
    w[0] = np.arange(16).reshape(4, 4) / 16
    w[1] = 1 - w[0]
    boxes = np.array([[0, 0, 14, 14],      # centres (4|12, 4|12): pixels [0:2, 0:2]
                      [25, 25, 27, 27]])   # no centre inside: the pixel under (26, 26)
    means, bg = tool['box_means'](w, boxes, (32, 32), (24, 32))
    np.testing.assert_allclose(means[0], [w[0, :2, :2].mean(), w[1, :2, :2].mean()])
    np.testing.assert_allclose(means[1], [w[0, 3, 3], w[1, 3, 3]])
    inside = np.zeros((4, 4), bool)
    inside[:3] = True
    inside[:2, :2] = False
    inside[3, 3] = False
    np.testing.assert_allclose(bg, [w[0][inside].mean(), w[1][inside].mean()])
    assert [tool['size_class'](a) for a in (31**2, 32**2, 95**2, 96**2)] == [
        'small', 'medium', 'medium', 'large']


@pytest.mark.slow
def test_statistics_of_an_asff_detector(tool, tiny_coco, tmp_path):
    torch.set_num_threads(1)
    cfg = osp.join(ROOT, 'configs', 'quickstart', 'retinanet_r18_asff_synth-coco.py')
    model, dataset = tool['build'](cfg, None, cfg_options={
        'test_dataloader.dataset.data_root': tiny_coco,
        'test_dataloader.dataset.pipeline.1.scale': (128, 128)})
    stats = tool['collect'](model, dataset, 3)
    assert sorted(stats) == [f'neck.1.fusions.{i}.weights' for i in range(5)]
    n_boxes = sum(len(dataset[i]['data_samples'].gt_instances) for i in range(3))
    for st in stats.values():
        assert st['sources'] == ['P3', 'P4', 'P5', 'P6', 'P7']
        counted = sum(st['groups'][g]['count'] for g in ('small', 'medium', 'large'))
        assert counted == n_boxes
        for group in st['groups'].values():
            if group['count']:
                assert abs(sum(group['mean']) - 1) < 1e-5   # softmax weights
    text = tool['format_tables'](stats)
    assert '(fused level P3)' in text and '| small |' in text
    json.dumps(stats)   # what --json writes
