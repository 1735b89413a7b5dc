"""configs/baff_skipnet: every config parses and builds; the two-phase chain loads;
the segmentor predicts at the image size (1024x2048, 513x1025); BAFF's overhead."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from fusion_necks.analysis.complexity import count_flops, count_parameters
from fusion_necks.layers import BAFF

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'baff_skipnet'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
STEM = 'mobilenet-v2_{phase}_4xb2-40k_cityscapes-512x1024'
SKIPNET = CONFIG_DIR / f"skipnet_{STEM.format(phase='phase2')}.py"
BAFF_SKIPNET = CONFIG_DIR / f"baff-skipnet_{STEM.format(phase='phase2')}.py"


def _build(path, **head_overrides):
    cfg = Config.fromfile(str(path))
    cfg.model.pretrained = None  # offline: do not even record the mmcls:// init
    cfg.model.decode_head.update(head_overrides)
    init_default_scope('mmseg')
    return revert_sync_batchnorm(MODELS.build(cfg.model)), cfg


def test_config_set_is_complete():
    names = {p.name for p in CONFIGS}
    for method in ('skipnet', 'baff-skipnet'):
        for phase in ('phase1', 'phase2'):
            assert f'{method}_{STEM.format(phase=phase)}.py' in names
    for ablation in ('baff-skipnet-b1', 'baff-skipnet-b4', 'baff-skipnet-b16',
                     'baff-skipnet-conv2d', 'baff-skipnet-feature', 'skipnet-feature'):
        assert f"{ablation}_{STEM.format(phase='phase2')}.py" in names


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem.split('_')[0] + '_' + p.stem.split('_')[2]
                                               for p in CONFIGS])
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
    assert cfg.model.pretrained == 'mmcls://mobilenet_v2'  # the official init is kept
    assert cfg.model.backbone.out_indices == (2, 4, 6)
    assert cfg.train_cfg.max_iters == 40000 and cfg.param_scheduler[0].end == 40000
    model, _ = _build(path)
    head = model.decode_head
    name = path.name.split('_')[0]
    if '_phase1_' in path.name:
        assert cfg.load_from is None
        assert type(head).__name__ == 'SkipNetWarmupHead' and not model.with_auxiliary_head
        return
    # phase 2 loads the phase-1 checkpoint of the same method
    phase1 = f"{name.split('-b')[0].split('-conv2d')[0].split('-feature')[0]}_" \
             f"{STEM.format(phase='phase1')}"
    assert os.path.dirname(cfg.load_from) == f'work_dirs/{phase1}'
    assert (CONFIG_DIR / f'{phase1}.py').exists()
    assert type(head).__name__ == 'SkipNetHead' and not model.with_auxiliary_head
    assert head.fusion == ('baff' if name.startswith('baff') else 'add')
    assert head.fusion_space == ('feature' if name.endswith('-feature') else 'score')
    if head.fusion == 'baff':
        expected_block = {'baff-skipnet-b1': 1, 'baff-skipnet-b4': 4,
                          'baff-skipnet-b16': 16}.get(name, 8)
        expected_net = 'conv2d' if name.endswith('-conv2d') else 'conv3d'
        for fusion in head.fusions:
            assert isinstance(fusion, BAFF)
            assert fusion.block_size == expected_block and fusion.weight_net == expected_net


def test_phase2_loads_the_phase1_encoder_and_score_layers(tmp_path):
    # As the Runner loads `load_from`: mmengine's load_checkpoint, non-strict, by name.
    phase1, _ = _build(CONFIG_DIR / f"baff-skipnet_{STEM.format(phase='phase1')}.py")
    phase2, _ = _build(BAFF_SKIPNET)
    torch.manual_seed(0)
    with torch.no_grad():  # phase-1 weights that no initialisation could produce
        for p in phase1.decode_head.parameters():
            p.normal_()
    state = phase1.state_dict()
    ckpt = tmp_path / 'iter_40000.pth'
    torch.save(dict(meta=dict(), state_dict=state), ckpt)
    before = {k: v.clone() for k, v in phase2.state_dict().items()}
    load_checkpoint(phase2, str(ckpt), map_location='cpu', strict=False,
                    revise_keys=[(r'^module\.', '')])
    after = phase2.state_dict()
    missing = sorted(k for k in after if k not in state)
    # only what phase 1 does not have starts fresh: the transposed convs and BAFF
    assert missing and all(k.startswith(('decode_head.upsamplers.', 'decode_head.fusions.'))
                           for k in missing)
    assert not [k for k in state if k not in after]  # nothing of phase 1 is dropped
    for k in ('decode_head.conv_seg.weight', 'decode_head.score_convs.0.weight',
              'decode_head.score_convs.1.weight'):
        assert torch.equal(after[k], state[k]), k
    for k in after:
        if k in state:
            assert torch.equal(after[k], state[k]), k
        else:
            assert torch.equal(after[k], before[k]), k
    convs = [k for k in after if k in state and after[k].dim() == 4]
    assert len(convs) > 50  # every conv of the encoder and the 3 score layers ...
    assert all(not torch.equal(after[k], before[k]) for k in convs)  # ... came from phase 1


def test_segmentor_predicts_at_image_size():
    # Through the data preprocessor and EncoderDecoder.predict (test mode 'whole'); the
    # `add` path differs only in the fusion op (tests/test_decode_heads covers it).
    torch.manual_seed(0)
    model, _ = _build(BAFF_SKIPNET)
    model.eval()
    for size in ((1024, 2048), (513, 1025)):
        sample = SegDataSample(metainfo=dict(ori_shape=size, img_shape=size, pad_shape=size))
        data = dict(inputs=[torch.randint(0, 256, (3, *size), dtype=torch.uint8)],
                    data_samples=[sample])
        with torch.no_grad():
            results = model.test_step(data)
        assert results[0].seg_logits.data.shape == (19, *size)
        assert results[0].pred_sem_seg.data.shape == (1, *size)
        assert torch.isfinite(results[0].seg_logits.data).all()


def test_baff_overhead_below_a_thousandth_of_params_and_flops():
    skipnet, _ = _build(SKIPNET)
    baff, _ = _build(BAFF_SKIPNET)
    n_skip, n_baff = count_parameters(skipnet), count_parameters(baff)
    n_fusion = sum(count_parameters(f) for f in baff.decode_head.fusions)
    assert n_baff - n_skip == n_fusion == 2 * 97
    assert n_fusion / n_skip < 1e-3 and n_fusion / n_baff < 1e-3
    # FLOPs (MACs) at 128x256: every conv scales with the image area, so the ratio is that
    # of 1024x2048 up to rounding at the borders (docs/baff_skipnet.md has 1024x2048).
    x = torch.randn(1, 3, 128, 256)
    flops = {}
    for key, model in (('skipnet', skipnet), ('baff', baff)):
        model.eval()
        flops[key] = count_flops(model, (x,), fn=lambda t, m=model: m.decode_head(
            m.backbone(t)), backends=('torch',))['torch'].total
    extra = flops['baff'] - flops['skipnet']
    assert extra > 0
    assert extra / flops['skipnet'] < 1e-3 and extra / flops['baff'] < 1e-3
