"""configs/quickstart: the ASFF variants of the synthetic quickstart (RetinaNet R-18 demo,
FCOS, Faster R-CNN, YOLOv3) change only the neck of their quickstart baseline, the
baselines change only data/schedule/from-scratch keys of the real-data configs, and
two training iterations of every ASFF quickstart run on a tiny synthetic set."""
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QS = osp.join(ROOT, 'configs', 'quickstart')
REAL = osp.join(ROOT, 'configs', 'asff')

# quickstart ASFF config -> (its quickstart baseline, real-data ASFF config, real-data
# baseline if the quickstart baseline is ours; the R-18 FCOS / Faster R-CNN quickstart
# baselines are shared with FINE and tested in test_fine_quickstart.py)
PAIRS = {
    'retinanet_r18_asff_synth-coco.py':
    ('retinanet_r18_fpn_synth-coco.py', 'retinanet_r50_fpn-asff_1x_coco.py', None),
    'fcos_r18_asff_synth-coco.py':
    ('fcos_r18_fpn_synth-coco.py', 'fcos_r50-caffe_fpn-asff_gn-head_1x_coco.py', None),
    'faster-rcnn_r18_asff_synth-coco.py':
    ('faster-rcnn_r18_fpn_synth-coco.py', 'faster-rcnn_r50_fpn-asff_1x_coco.py', None),
    'yolov3_d53-asff_synth-coco.py':
    ('yolov3_d53_synth-coco.py', 'yolov3_d53-asff_8xb8-ms-608-273e_coco.py',
     'yolov3_d53_8xb8-ms-608-273e_coco.py'),
}
# what a quickstart baseline may change in the real-data model: training from scratch
# (no pretrained weights offline, learned BN statistics) and the 5 synthetic classes
FROM_SCRATCH = {'backbone.init_cfg', 'backbone.norm_eval', 'backbone.norm_cfg.requires_grad',
                'bbox_head.num_classes', 'roi_head.bbox_head.num_classes'}


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def load(path):
    from fusion_necks.utils.config import load_config
    return load_config(path)


def _flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def _without_neck(cfg):
    d = cfg.to_dict()
    d['model'] = {k: v for k, v in d['model'].items() if k != 'neck'}
    d.pop('asff_neck', None)
    return d


def test_demo_switch_picks_the_asff_quickstart():
    import runpy
    demo = runpy.run_path(osp.join(ROOT, 'tools', 'demo.py'))
    assert demo['quickstart_config']('det', 'asff', 'long') == osp.join(
        QS, 'retinanet_r18_asff_synth-coco.py')
    for neck in ('asff', 'asff-uniform'):
        assert demo['quickstart_config']('det', neck) == osp.join(
            QS, f'retinanet_r18_{neck}_synth-coco-fast.py')


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_quickstart_asff_changes_only_the_neck(name):
    base_name, real_name, _ = PAIRS[name]
    cfg, base, real = load(osp.join(QS, name)), load(osp.join(QS, base_name)), load(
        osp.join(REAL, real_name))
    assert _without_neck(cfg) == _without_neck(base)
    assert cfg.custom_imports == dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
    neck = cfg.model.neck
    assert isinstance(neck, list) and len(neck) == 2 and neck[0] == base.model.neck
    # the same ASFF as the real-data config, at the width of the quickstart's FPN (128 in
    # the RetinaNet demo and FCOS, 256 in Faster R-CNN; YOLOv3: the official 512/256/128)
    expected = dict(real.model.neck[1])
    if 'r18' in name:
        expected['in_channels'] = base.model.neck.out_channels
    assert neck[1] == expected


@pytest.mark.parametrize('name', sorted(n for n, v in PAIRS.items() if v[2]))
def test_quickstart_baseline_keeps_the_real_model(name):
    base_name, _, real_base_name = PAIRS[name]
    qs, real = load(osp.join(QS, base_name)), load(osp.join(REAL, real_base_name))
    a, b = _flat(qs.model.to_dict()), _flat(real.model.to_dict())
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    allowed = {k for k in changed if any(k == f or k.startswith(f + '.') for f in FROM_SCRATCH)}
    assert changed and changed == allowed, changed - allowed
    assert qs.train_dataloader.dataset.data_root == 'data/synthetic_coco/'
    assert qs.train_cfg.type == 'IterBasedTrainLoop' and 'asff_neck' not in qs


def _tiny(cfg, data_root, work_dir, size=96):
    """``cfg`` on the tiny set: ``size`` px, batch 2, 2 iterations, no validation."""
    from fusion_necks.compat import apply_config_compat
    for dl in (cfg.train_dataloader, ):
        dl.dataset.data_root = data_root
        dl.batch_size, dl.num_workers, dl.persistent_workers = 2, 0, False
        for t in dl.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (size, size)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.train_cfg.max_iters = 2
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=10)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(str(work_dir))
    apply_config_compat(cfg)
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(PAIRS))
def test_two_training_iterations_on_tiny_data(name, tiny_coco, tmp_path):
    """Loss finite at both iterations and every ASFF parameter updated by the optimizer."""
    from fusion_necks.utils.runner import build_runner
    cfg = _tiny(load(osp.join(QS, name)), tiny_coco, tmp_path / osp.splitext(name)[0])
    runner, _, _ = build_runner(lambda: (cfg, 'mmdet'))
    model = runner.model
    before = {k: v.detach().clone() for k, v in model.neck[1].named_parameters()}
    runner.train()
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss)), loss
    after = dict(model.neck[1].named_parameters())
    unchanged = [k for k, v in before.items() if torch.equal(v, after[k].detach())]
    assert not unchanged, unchanged
