"""configs/quickstart/*_fine_*: each FINE quickstart is its FPN quickstart with only the
neck type changed; the Faster/Mask R-CNN quickstarts are the official models on a
ResNet-18 with 5 classes; and every FINE quickstart trains for two iterations on tiny
synthetic data, with FINE's parameters in the optimised graph (they change)."""
import os.path as osp

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QS = osp.join(ROOT, 'configs', 'quickstart')
DET = ('retinanet', 'faster-rcnn', 'mask-rcnn', 'fcos')
# FINE quickstart -> its FPN quickstart
PAIRS = {f'{d}_r18_fine_synth-coco.py': f'{d}_r18_fpn_synth-coco.py' for d in DET}
PAIRS['sem-fpn_r18_fine_synth-cityscapes.py'] = 'sem-fpn_r18_fpn_synth-cityscapes.py'


def load(path):
    from fusion_necks.utils.config import load_config
    return load_config(path)


def flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = tuple(v) if isinstance(v, list) else v
    return out


def diff(a, b):
    fa, fb = flat(a), flat(b)
    return {k for k in set(fa) | set(fb) if fa.get(k, '<missing>') != fb.get(k, '<missing>')}



def test_fine_lr_quickstart_slows_only_the_fine_layers():
    """The FINE learning-rate variant: only the optimiser's paramwise cfg differs, and the
    built optimiser gives the FINE layers (and nothing else) a tenth of the base lr."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    cfg = load(osp.join(QS, 'retinanet_r18_fine-lr0.1_synth-coco-fast.py'))
    base = load(osp.join(QS, 'retinanet_r18_fine_synth-coco-fast.py'))
    assert diff(cfg.to_dict(), base.to_dict()) == {
        'optim_wrapper.paramwise_cfg.custom_keys.neck.fine_layers.lr_mult'}
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    lr_of = {id(p): g['lr'] for g in optim.param_groups for p in g['params']}
    base_lr = cfg.optim_wrapper.optimizer.lr
    fine = [n for n, _ in model.named_parameters() if n.startswith('neck.fine_layers.')]
    assert fine
    for name, p in model.named_parameters():
        expected = base_lr * 0.1 if name in fine else base_lr
        assert lr_of[id(p)] == pytest.approx(expected), name


@pytest.mark.parametrize('fine,fpn', sorted(PAIRS.items()))
def test_fine_quickstart_changes_only_the_neck_type(fine, fpn):
    a, b = load(osp.join(QS, fine)).to_dict(), load(osp.join(QS, fpn)).to_dict()
    assert diff(a, b) <= {'model.neck.type', 'custom_imports.imports',
                          'custom_imports.allow_failed_imports'}
    assert a['model']['neck']['type'] == 'FINEFPN' and b['model']['neck']['type'] == 'FPN'
    assert a['custom_imports'] == dict(imports=['fusion_necks.registry'], allow_failed_imports=False)


def test_fine_xavier_quickstart_changes_only_the_init():
    a = load(osp.join(QS, 'retinanet_r18_fine-xavier_synth-coco.py')).to_dict()
    b = load(osp.join(QS, 'retinanet_r18_fine_synth-coco.py')).to_dict()
    assert diff(a, b) == {'model.neck.fine_cfg.zeros_init'}
    assert a['model']['neck']['fine_cfg']['zeros_init'] is False
    assert b['model']['neck'].get('fine_cfg', {}).get('zeros_init') is None


def test_demo_one_word_switch_finds_the_fine_configs():
    import runpy
    demo = runpy.run_path(osp.join(ROOT, 'tools', 'demo.py'))
    assert demo['quickstart_config']('det', 'fine') == osp.join(
        QS, 'retinanet_r18_fine_synth-coco-fast.py')
    assert demo['quickstart_config']('det', 'fine', 'long') == osp.join(
        QS, 'retinanet_r18_fine_synth-coco.py')
    assert demo['quickstart_config']('seg', 'fine') == osp.join(
        QS, 'sem-fpn_r18_fine_synth-cityscapes.py')
    assert demo['quickstart_config']('det', 'fine-xavier', 'long') == osp.join(
        QS, 'retinanet_r18_fine-xavier_synth-coco.py')
    with pytest.raises(SystemExit, match="available necks for --task det: asff, asff-uniform, "
                                         "fine, fine-lr0.1, fpn"):
        demo['quickstart_config']('det', 'fine-xavier')


@pytest.mark.parametrize('name,official', [
    ('faster-rcnn_r18_fpn_synth-coco.py', 'faster-rcnn_r50_fpn_1x_coco.py'),
    ('mask-rcnn_r18_fpn_synth-coco.py', 'mask-rcnn_r50_fpn_1x_coco.py')])
def test_two_stage_quickstarts_are_the_official_models_on_r18(name, official):
    # configs/fpn/*_r50_fpn_1x_coco.py: the official mmdet configs, unchanged
    ours, ref = load(osp.join(QS, name)), load(osp.join(ROOT, 'configs', 'fpn', official))
    changed = diff(ours.model.to_dict(), ref.model.to_dict())
    expected = {'model.backbone.depth', 'model.backbone.init_cfg.type',
                'model.backbone.init_cfg.checkpoint', 'model.backbone.init_cfg',
                'model.backbone.norm_eval', 'model.neck.in_channels',
                'model.roi_head.bbox_head.num_classes', 'model.roi_head.mask_head.num_classes'}
    assert {f'model.{k}' for k in changed} <= expected, changed
    assert ours.model.backbone.depth == 18 and ours.model.neck.in_channels == [64, 128, 256, 512]
    if 'mask' in name:
        assert ours.model.roi_head.mask_head.num_classes == 5
        pipes = (ours.train_dataloader.dataset.pipeline, ours.test_dataloader.dataset.pipeline)
        for pipe in pipes:
            assert [t for t in pipe if t['type'] == 'LoadAnnotations'][0]['with_mask'] is True
        assert ours.val_evaluator.metric == ['bbox', 'segm']


def _tiny(cfg, data_root, tmp_path):
    """The quickstart config on the tiny synthetic set, batch 2, two iterations."""
    seg = cfg.default_scope == 'mmseg'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.batch_size, dl.num_workers, dl.persistent_workers = 2, 0, False
        dl.dataset.data_root = data_root
        for t in dl.dataset.pipeline:
            if t['type'] in ('Resize', 'RandomResize'):
                t['scale'] = (256, 128) if seg else (128, 128)
            if t['type'] == 'RandomCrop':
                t['crop_size'] = (128, 128)
    if seg:
        cfg.model.data_preprocessor.size = (128, 128)
    else:
        cfg.val_evaluator.ann_file = data_root + 'annotations/instances_val2017.json'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(tmp_path)
    return cfg


@pytest.mark.parametrize('name', sorted(PAIRS))
def test_fine_quickstart_trains_two_iterations(name, tiny_coco, tiny_cityscapes, tmp_path):
    from fusion_necks.compat import apply_config_compat
    from fusion_necks.layers import FINE
    from fusion_necks.utils.config import detect_scope
    from fusion_necks.utils.runner import build_runner

    cfg = load(osp.join(QS, name))
    scope = detect_scope(cfg)
    cfg = _tiny(cfg, tiny_cityscapes if scope == 'mmseg' else tiny_coco, tmp_path)
    apply_config_compat(cfg)
    runner, _, _ = build_runner(lambda: (cfg, scope))
    model = runner.model
    model.init_weights()
    fines = [m for m in model.modules() if isinstance(m, FINE)]
    assert len(fines) == 2  # the paper's default stages
    width = model.neck.out_channels
    assert all(f.num_heads == width // 16 for f in fines)  # d = 16 (8 heads at C=128)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if 'fine_layers' in n}
    assert before
    runner.train()
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss))
    after = dict(model.named_parameters())
    changed = [n for n, p in before.items() if not torch.equal(p, after[n].detach())]
    assert sorted(changed) == sorted(before), set(before) - set(changed)
