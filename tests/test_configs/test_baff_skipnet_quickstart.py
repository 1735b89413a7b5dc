"""configs/quickstart/*skipnet*: the synthetic two-phase chain (phase 1 once, then SkipNet
and BAFF-SkipNet with the same recipe), and the phase-1 -> phase-2 hand-over through the
Runner's `load_from`."""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / 'configs' / 'quickstart'
REAL = ROOT / 'configs' / 'baff_skipnet'


def _cfg(name):
    return Config.fromfile(str(QUICK / f'{name}_synth-cityscapes.py'))


def _real(name):
    return Config.fromfile(str(REAL / f'{name}_4xb2-40k_cityscapes-512x1024.py'))


def test_quickstart_models_are_the_real_ones_on_synthetic_data():
    for method in ('skipnet', 'baff-skipnet'):
        for phase in ('phase1', 'phase2'):
            name = f'{method}_mobilenet-v2_{phase}'
            cfg, real = _cfg(name), _real(name)
            assert cfg.custom_imports == dict(imports=['fusion_necks.registry'],
                                              allow_failed_imports=False)
            assert cfg.model.decode_head == real.model.decode_head, name
            assert cfg.model.backbone == real.model.backbone, name
            assert cfg.model.pretrained is None  # from scratch, offline
            assert cfg.train_dataloader.dataset.data_root == 'data/synthetic_cityscapes/'
            assert {e['type'] for e in cfg.val_evaluator} == {'IoUMetric', 'CityscapesMetric'}


def test_phase2_loads_the_checkpoint_phase1_writes_and_recipes_match():
    phase1 = _cfg('skipnet_mobilenet-v2_phase1')
    assert _cfg('baff-skipnet_mobilenet-v2_phase1').to_dict() == phase1.to_dict()
    last = phase1.train_cfg.max_iters
    assert last % phase1.default_hooks.checkpoint.interval == 0
    skip, baff = _cfg('skipnet_mobilenet-v2_phase2'), _cfg('baff-skipnet_mobilenet-v2_phase2')
    for cfg in (skip, baff):
        assert cfg.load_from == (f'work_dirs/skipnet_mobilenet-v2_phase1_synth-cityscapes/'
                                 f'iter_{last}.pth')
    # same recipe and seed: the configs differ only in the fusion of the decode head
    a, b = skip.to_dict(), baff.to_dict()
    ha, hb = a['model'].pop('decode_head'), b['model'].pop('decode_head')
    assert a == b
    assert {k: v for k, v in hb.items() if k not in ('fusion', 'baff_cfg')} == \
        {k: v for k, v in ha.items() if k != 'fusion'}
    assert (ha['fusion'], hb['fusion']) == ('add', 'baff')


def test_runner_load_from_hands_phase1_weights_to_phase2(tmp_path):
    init_default_scope('mmseg')
    phase1 = revert_sync_batchnorm(MODELS.build(_cfg('skipnet_mobilenet-v2_phase1').model))
    torch.manual_seed(0)
    with torch.no_grad():  # weights no initialisation produces (BN statistics included)
        for t in list(phase1.parameters()) + [b for b in phase1.buffers() if b.is_floating_point()]:
            t.uniform_(0.5, 1.5)
    ckpt = tmp_path / 'iter_1000.pth'
    torch.save(dict(meta=dict(), state_dict=phase1.state_dict()), ckpt)

    cfg = _cfg('baff-skipnet_mobilenet-v2_phase2')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ckpt)
    runner = Runner.from_cfg(cfg)
    # what Runner.train() does before the first iteration
    runner._init_model_weights()
    fresh = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_or_resume()
    got, want = runner.model.state_dict(), phase1.state_dict()
    intended = [k for k in got if k.startswith('backbone.')] + [
        f'decode_head.{m}.{p}' for m in ('conv_seg', 'score_convs.0', 'score_convs.1')
        for p in ('weight', 'bias')]
    assert len(intended) > 200
    for k in intended:
        assert torch.equal(got[k], want[k]), k
    rest = [k for k in got if k not in intended]
    assert rest and all(k.startswith(('decode_head.upsamplers.', 'decode_head.fusions.'))
                        for k in rest)
    for k in rest:  # bilinear transposed convs and BAFF keep their initialisation
        assert torch.equal(got[k], fresh[k]), k


@pytest.mark.slow
def test_two_phase_chain_trains_with_tools_train(tmp_path, tiny_cityscapes, tool):
    """2 iterations of phase 1, then 2 of BAFF-SkipNet phase 2 from its checkpoint, as a
    user runs them (tools/train.py): the hand-over loads all but BAFF and the upsamplers,
    and both phases validate with IoUMetric and CityscapesMetric."""
    def run(name, work, extra=()):
        opts = [f'{k}.dataset.data_root={tiny_cityscapes}'
                for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
        opts += ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
                 'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
                 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
                 f'val_evaluator.1.output_dir={tmp_path}/cs_{name}', *extra]
        proc = tool(['tools/train.py', str(QUICK / f'{name}_synth-cityscapes.py'),
                     '--work-dir', str(work), '--cfg-options', *opts])
        out = proc.stdout + proc.stderr
        assert re.search(r'Iter\(train\) \[2/2\]', out) and re.search(r'mIoU: \d', out)
        assert 'averageScoreCategories' in out
        return out

    out1 = run('skipnet_mobilenet-v2_phase1', tmp_path / 'p1')
    assert 'decode.loss_ce_lvl0' in out1 and 'decode.loss_ce_lvl2' in out1
    ckpt = tmp_path / 'p1' / 'iter_2.pth'
    assert ckpt.is_file()
    out2 = run('baff-skipnet_mobilenet-v2_phase2', tmp_path / 'p2', [f'load_from={ckpt}'])
    assert 'Load checkpoint from' in out2
    missing = re.search(r'missing keys in source state_dict: (.*)', out2).group(1)
    keys = [k.strip() for k in missing.split(',')]
    assert keys and all(k.startswith(('decode_head.upsamplers.', 'decode_head.fusions.'))
                        for k in keys), keys
    assert 'unexpected key' not in out2

    # BAFF's block weight maps over a val image, from the phase-2 checkpoint
    image = sorted(Path(tiny_cityscapes).glob('leftImg8bit/val/*/*_leftImg8bit.png'))[0]
    vis = tmp_path / 'vis'
    proc = tool(['tools/analysis/visualize_fusion_weights.py',
                 str(QUICK / 'baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py'),
                 str(tmp_path / 'p2' / 'iter_2.pth'), str(image), '--out-dir', str(vis)])
    pngs = sorted(p.name for p in vis.glob('*.png'))
    assert pngs == ['decode_head.fusions.0-level0-weights.png',
                    'decode_head.fusions.1-level1-weights.png'], (pngs, proc.stdout)
    assert all((vis / p).stat().st_size > 10_000 for p in pngs)


def test_baff_lr_quickstart_speeds_up_only_the_baff_weight_nets():
    """The BAFF learning-rate variant (phase 2): only the optimiser's paramwise cfg
    differs; the built optimiser gives the BAFF weight nets (and nothing else) 10x the lr
    and no weight decay."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = _cfg('baff-skipnet_mobilenet-v2_phase2-baff-lr10')
    base = _cfg('baff-skipnet_mobilenet-v2_phase2')
    extra = {k: v for k, v in cfg.to_dict().items() if base.to_dict().get(k) != v}
    assert set(extra) == {'optim_wrapper'}
    assert cfg.optim_wrapper.paramwise_cfg == dict(
        custom_keys={'decode_head.fusions': dict(lr_mult=10.0, decay_mult=0.0)})
    assert {k: v for k, v in cfg.optim_wrapper.items() if k != 'paramwise_cfg'} == \
        base.to_dict()['optim_wrapper']
    model = MODELS.build(cfg.model)
    groups = {id(p): g for g in build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
              for p in g['params']}
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    fusion = [n for n, _ in model.named_parameters() if n.startswith('decode_head.fusions.')]
    assert fusion
    for name, p in model.named_parameters():
        lr, wd = (base_lr * 10, 0.0) if name in fusion else (base_lr, base_wd)
        assert groups[id(p)]['lr'] == pytest.approx(lr), name
        assert groups[id(p)]['weight_decay'] == pytest.approx(wd), name
