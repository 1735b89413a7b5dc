"""``type='SyncBN'`` builds BN without CUDA: the SkipNet and AFF segmentors built by
``mmseg.apis.init_model`` on a CPU keep no ``nn.SyncBatchNorm`` and load their weights."""
from pathlib import Path

import pytest
import torch
from torch import nn

from fusion_necks.layers.sync_batch_norm import SyncBatchNorm

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [
    'configs/baff_skipnet/skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py',
    'configs/baff_skipnet/baff-skipnet_mobilenet-v2_phase2_4xb2-40k_cityscapes-512x1024.py',
    'configs/autofocusformer/mask2former-point_aff-mini_8xb4-45k_cityscapes-512x1024.py',
    'configs/autofocusformer/upernet_aff-mini-1-5th_8xb2-160k_ade20k-512x512.py',
]

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason='the BN fallback is for CPUs')


@no_cuda
def test_factory_builds_batchnorm_with_syncbn_state_dict_keys(monkeypatch):
    monkeypatch.delenv('FUSION_NECKS_KEEP_SYNCBN', raising=False)
    bn = SyncBatchNorm(8, eps=1e-3, momentum=0.05)
    assert type(bn) is nn.BatchNorm2d
    assert (bn.eps, bn.momentum, bn.num_features) == (1e-3, 0.05, 8)
    assert set(bn.state_dict()) == set(nn.SyncBatchNorm(8).state_dict())
    monkeypatch.setenv('FUSION_NECKS_KEEP_SYNCBN', '1')
    assert type(SyncBatchNorm(8)) is nn.SyncBatchNorm


@no_cuda
def test_build_norm_layer_syncbn_under_both_scopes():
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    from mmcv.cnn import build_norm_layer
    from mmengine.registry import DefaultScope
    for scope in ('mmseg', 'mmdet'):
        with DefaultScope.overwrite_default_scope(scope):
            name, layer = build_norm_layer(dict(type='SyncBN', requires_grad=False), 4)
        assert name == 'bn' and type(layer) is nn.BatchNorm2d, (scope, type(layer))
        assert not any(p.requires_grad for p in layer.parameters())


def _count(model, cls):
    return sum(type(m) is cls for m in model.modules())


@no_cuda
@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: Path(p).stem.split('_')[0])
def test_init_model_on_cpu_has_no_syncbn_and_keeps_weights(config, tmp_path, monkeypatch):
    monkeypatch.delenv('FUSION_NECKS_KEEP_SYNCBN', raising=False)
    from mmseg.apis import init_model
    path = str(ROOT / config)
    model = init_model(path, None, device='cpu')
    assert _count(model, nn.SyncBatchNorm) == 0
    n_bn = _count(model, nn.BatchNorm2d)
    # a checkpoint with non-trivial BN statistics round-trips through init_model
    torch.manual_seed(0)
    sd = {k: (torch.rand_like(v) + 0.5 if v.is_floating_point() else v)
          for k, v in model.state_dict().items()}
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': sd, 'meta': {'dataset_meta': {'classes': ['a'] * 19}}}, ckpt)
    loaded = init_model(path, str(ckpt), device='cpu')
    assert _count(loaded, nn.SyncBatchNorm) == 0 and _count(loaded, nn.BatchNorm2d) == n_bn
    got = loaded.state_dict()
    assert set(got) == set(sd)
    for k, v in sd.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
    if n_bn:
        # the same model with KEEP_SYNCBN has SyncBN where we now have BN: nothing else changed
        monkeypatch.setenv('FUSION_NECKS_KEEP_SYNCBN', '1')
        kept = init_model(path, None, device='cpu')
        assert _count(kept, nn.SyncBatchNorm) + _count(kept, nn.BatchNorm2d) == n_bn
        assert set(kept.state_dict()) == set(sd)
