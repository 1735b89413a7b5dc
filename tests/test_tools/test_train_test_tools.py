"""tools/train.py, --resume, tools/test.py, dist_train.sh, get_flops.py and benchmark.py,
run as a user runs them (subprocesses) on a tiny synthetic set."""
import glob
import os
import os.path as osp
import pickle
import re

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_coco, repo_root, tool, det_config):
    """Two training iterations, then resumed to four (one work_dir)."""
    tmp = tmp_path_factory.mktemp('train')
    cfg = det_config(tmp, tiny_coco, repo_root)
    work = str(tmp / 'work')
    first = tool(['tools/train.py', cfg, '--work-dir', work])
    resumed = tool(['tools/train.py', cfg, '--work-dir', work, '--resume',
                    '--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4'])
    return dict(cfg=cfg, work=work, first=first, resumed=resumed, tmp=tmp)


def test_train_writes_checkpoint_and_validates(trained):
    out = trained['first'].stdout + trained['first'].stderr
    assert osp.isfile(osp.join(trained['work'], 'iter_2.pth'))
    assert re.search(r'Iter\(train\) \[2/2\]', out)
    assert 'coco/bbox_mAP' in out  # validation ran through CocoMetric


def test_resume_continues_at_the_right_iteration(trained):
    out = trained['resumed'].stdout + trained['resumed'].stderr
    assert re.search(r'resumed epoch: \d+, iter: 2', out), out[-3000:]
    assert re.search(r'Iter\(train\) \[3/4\]', out) and re.search(r'Iter\(train\) \[4/4\]', out)
    assert not re.search(r'Iter\(train\) \[1/4\]', out)
    assert osp.isfile(osp.join(trained['work'], 'iter_4.pth'))


def test_test_tool_prints_metrics_and_dumps(trained, tool):
    out_pkl = str(trained['tmp'] / 'results.pkl')
    proc = tool(['tools/test.py', trained['cfg'], osp.join(trained['work'], 'iter_4.pth'),
                 '--work-dir', str(trained['tmp'] / 'test'), '--out', out_pkl, '--show-dir', 'vis'])
    out = proc.stdout + proc.stderr
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_s', 'coco/bbox_mAP_m', 'coco/bbox_mAP_l'):
        assert key in out
    with open(out_pkl, 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 8 and 'pred_instances' in results[0]
    painted = glob.glob(str(trained['tmp'] / 'test' / '*' / 'vis' / '*.jpg'))
    assert len(painted) == 8, painted


def test_load_from_runner_checkpoint(trained, tool):
    """load_from of a Runner checkpoint (HistoryBuffer, numpy inside) works on torch>=2.6."""
    work = str(trained['tmp'] / 'finetune')
    proc = tool(['tools/train.py', trained['cfg'], '--work-dir', work, '--no-validate',
                 '--cfg-options', f"load_from={osp.join(trained['work'], 'iter_2.pth')}",
                 'train_cfg.max_iters=1'])
    assert 'Load checkpoint from' in proc.stdout + proc.stderr
    assert osp.isfile(osp.join(work, 'iter_1.pth'))


def test_distributed_training_two_cpu_processes(tmp_path, tiny_coco, repo_root, tool, det_config):
    cfg = det_config(tmp_path, tiny_coco, repo_root, extra='''
        train_cfg = dict(max_iters=2, val_interval=100)
        log_level = 'DEBUG'  # every rank writes its own log file
        ''')
    work = str(tmp_path / 'dist')
    env_port = str(29500 + os.getpid() % 1000)
    os.environ['PORT'] = env_port
    try:
        tool(['tools/dist_train.sh', cfg, '2', '--work-dir', work], timeout=600)
    finally:
        os.environ.pop('PORT', None)
    logs = glob.glob(osp.join(work, '*', '*rank*.log'))
    ranks = sorted(int(re.search(r'rank(\d+)\.log$', p).group(1)) for p in logs)
    assert ranks == [0, 1], logs
    for p in logs:
        text = open(p).read()
        assert re.search(r'Iter\(train\) \[2/2\]', text), p
    ckpts = glob.glob(osp.join(work, '*.pth'))
    assert [osp.basename(c) for c in ckpts] == ['iter_2.pth']
    env_log = open(logs[0]).read()
    assert 'Distributed training: True' in env_log


def test_get_flops_and_benchmark_on_a_config(tmp_path, repo_root, tool):
    cfg = f'{repo_root}/configs/quickstart/retinanet_r18_fpn_synth-coco.py'
    proc = tool(['tools/analysis/get_flops.py', cfg, '--shape', '128', '160',
                 '--json', str(tmp_path / 'flops.json')])
    out = proc.stdout
    assert '1x3x128x160' in out
    import json
    data = json.load(open(tmp_path / 'flops.json'))
    assert data['params'] > 10_000_000  # R-18 RetinaNet ~19.8M with 5 classes
    for backend in ('mmengine', 'torch'):
        total = data['flops'][backend]['total']
        assert total > 0
        parts = data['flops'][backend]['by_module']
        # the breakdown adds up (heads and neck and backbone are all counted)
        assert sum(parts.values()) == pytest.approx(total, rel=0.02)
    proc = tool(['tools/analysis/benchmark.py', cfg, cfg, '--shape', '128', '128', '--runs', '3',
                 '--warmup', '1', '--json', str(tmp_path / 'bench.json')])
    bench = json.load(open(tmp_path / 'bench.json'))
    assert len(bench['results']) == 2
    for r in bench['results']:
        assert r['runs'] == 3 and r['median_ms'] > 0 and len(r['samples_ms']) == 3
        assert r['peak_mem_mib'] is not None and r['peak_mem_mib'] >= 0
    assert 'ratio' in proc.stdout


def test_segmentation_quickstart_trains_and_evaluates(tmp_path, tiny_cityscapes, repo_root, tool):
    """The mmseg path of train.py: Semantic FPN on synthetic Cityscapes, IoUMetric and
    cityscapesscripts' CityscapesMetric."""
    opts = [f'{k}.dataset.data_root={tiny_cityscapes}' for k in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')]
    opts += ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
             'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
             'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
             f'val_evaluator.1.output_dir={tmp_path}/cs_out', f'test_evaluator.1.output_dir={tmp_path}/cs_out',
             'default_hooks.logger.interval=1']
    proc = tool(['tools/train.py', 'configs/quickstart/sem-fpn_r18_fpn_synth-cityscapes.py',
                 '--work-dir', str(tmp_path / 'work'), '--cfg-options', *opts])
    out = proc.stdout + proc.stderr
    assert re.search(r'Iter\(train\) \[2/2\]', out)
    assert re.search(r'mIoU: \d', out) and 'averageScoreCategories' in out
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')
    # mmseg's --out with the two evaluators: each keeps its own PNGs (train ids / label ids)
    out_dir = tmp_path / 'preds'
    proc = tool(['tools/test.py', 'configs/quickstart/sem-fpn_r18_fpn_synth-cityscapes.py',
                 str(tmp_path / 'work' / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
                 '--out', str(out_dir), '--cfg-options', *opts])
    assert re.search(r'mIoU: \d', proc.stdout + proc.stderr)
    iou_pngs = glob.glob(str(out_dir / 'IoUMetric' / '**' / '*.png'), recursive=True)
    cs_pngs = glob.glob(str(out_dir / 'CityscapesMetric' / '**' / '*.png'), recursive=True)
    assert iou_pngs and len(cs_pngs) == len(iou_pngs)


def test_test_tool_refuses_a_pickled_checkpoint_in_one_line(trained, tool):
    """A checkpoint that pickles more than weights is not unpickled unless trusted: the
    tool exits with one message that names the file and the opt-in."""
    import numpy as np
    import torch
    ckpt = torch.load(osp.join(trained['work'], 'iter_4.pth'), weights_only=True)
    ckpt['meta']['seed'] = np.int64(0)  # a numpy object: not weights only
    bad = str(trained['tmp'] / 'pickled.pth')
    torch.save(ckpt, bad)
    proc = tool(['tools/test.py', trained['cfg'], bad, '--work-dir', str(trained['tmp'] / 't2')],
                check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'pickles objects beyond weights' in proc.stderr
    assert 'FUSION_NECKS_TRUST_CHECKPOINTS=1' in proc.stderr and 'Traceback' not in proc.stderr
