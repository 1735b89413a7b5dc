"""The registered AutoFocusFormer backbone in mmdet/mmseg: build, init_cfg, freezing,
and the configs in configs/autofocusformer."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.backbones.autofocusformer_backbone import AutoFocusFormer

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / 'configs' / 'autofocusformer').glob('*.py'))
NARROW = dict(arch='mini', embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1),
              num_heads=(2, 2, 2, 2))


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.mark.parametrize('framework', ['mmdet', 'mmseg'])
def test_registered_and_returns_dense_pyramid(framework):
    from importlib import import_module
    models = import_module(f'{framework}.registry').MODELS
    model = models.build(dict(type='AutoFocusFormer', **NARROW))
    assert isinstance(model, AutoFocusFormer)
    outs = model(torch.randn(2, 3, 72, 100))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 18, 25), (2, 16, 9, 13), (2, 32, 5, 7),
                                              (2, 32, 3, 4)]


def test_init_cfg_pretrained_loads_converted_and_official_files(tmp_path):
    from mmseg.registry import MODELS
    src = AutoFocusFormer(**NARROW)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    model = MODELS.build(dict(type='AutoFocusFormer', **NARROW,
                              init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    assert not torch.equal(model.stages[2].blocks[0].attn.q.weight,
                           src.stages[2].blocks[0].attn.q.weight)
    model.init_weights()
    assert model.is_init
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # an official-format file (kv interleaved per head, official rel-pos order) is
    # converted on load by the backbone's load hook
    from fusion_necks.backbones.aff_official_weights import OFFICIAL_TO_PAPER_COLUMNS
    official = {}
    for k, v in src.state_dict().items():
        k = k.replace('stages.', 'layers.').replace('attn.rel_pos_bias', 'attn.pos_embed')
        k = k.replace('patch_embed.conv1', 'patch_embed.proj1')
        k = k.replace('patch_embed.conv2', 'patch_embed.proj2')
        k = k.replace('downsample.importance', 'prob_net')
        k = k.replace('downsample.proj', 'downsample.linear')
        k = k.replace('weight_net.fc', 'weight_net.0').replace('weight_net.norm', 'weight_net.1')
        k = k.replace('out_norms.', 'norm')
        if k.endswith('attn.kv.weight') or k.endswith('attn.kv.bias'):
            v = v.reshape(2, 2, -1, *v.shape[1:]).transpose(0, 1).reshape(v.shape)  # 2 heads
        if k.endswith('pos_embed.weight') or k.endswith('weight_net.0.weight'):
            v = v[:, torch.tensor(OFFICIAL_TO_PAPER_COLUMNS).argsort()]
        official[k] = v
    path = tmp_path / 'official.pth'
    torch.save({'model': official, 'epoch': 1}, path)
    model = MODELS.build(dict(type='AutoFocusFormer', **NARROW,
                              init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_frozen_stages_and_norm_eval():
    model = AutoFocusFormer(**NARROW, frozen_stages=2, norm_eval=True)
    model.train()
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[1].parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert not model.patch_embed.bn.training and not model.stages[0].training
    assert model.stages[3].training
    with pytest.raises(ValueError, match='frozen_stages'):
        AutoFocusFormer(**NARROW, frozen_stages=5)


def test_config_set_and_keys():
    # the point-Mask2Former configs are checked in tests/test_point_decoder
    assert {p.name for p in CONFIGS if not p.name.startswith('mask2former-point_')} == {
        'upernet_aff-tiny_8xb2-160k_ade20k-512x512.py',
        'upernet_aff-mini-1-5th_8xb2-160k_ade20k-512x512.py',
        'mask-rcnn_aff-tiny_fpn_1x_coco.py'}
    for path in CONFIGS:
        cfg = Config.fromfile(str(path))
        assert cfg.custom_imports == dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
        bb = cfg.model.backbone
        assert bb.type == 'AutoFocusFormer' and 'window_size' not in bb  # Swin keys deleted
        assert bb.init_cfg.checkpoint.startswith('https://docs-assets.developer.apple.com/')


@pytest.mark.parametrize('name', ['upernet_aff-mini-1-5th_8xb2-160k_ade20k-512x512.py',
                                  'mask-rcnn_aff-tiny_fpn_1x_coco.py'])
def test_config_builds_and_runs(name):
    cfg = Config.fromfile(str(ROOT / 'configs' / 'autofocusformer' / name))
    cfg.model.backbone.init_cfg = None
    if name.startswith('upernet'):
        from mmseg.registry import MODELS
        init_default_scope('mmseg')
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 96, 128), mode='tensor')
        assert out.shape == (1, 150, 24, 32)
    else:
        from mmdet.registry import MODELS
        init_default_scope('mmdet')
        model = MODELS.build(cfg.model).eval()
        with torch.no_grad():
            feats = model.extract_feat(torch.randn(1, 3, 96, 128))
        assert [f.shape[-2:] for f in feats] == [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]
