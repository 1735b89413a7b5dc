"""fusion_necks.compat: each known breakage of the pinned stack, and its fix."""
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from mmengine.config import Config

from fusion_necks import compat


def _cfg(**kw):
    return Config(dict(**kw))


def test_missing_pretrained_is_an_error_unless_offline(monkeypatch, tmp_path):
    monkeypatch.setenv('FUSION_NECKS_CHECKPOINTS', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(compat, 'checkpoint_dirs', lambda: [str(tmp_path)])
    cfg = _cfg(model=dict(
        pretrained='open-mmlab://resnet50_v1c',
        backbone=dict(type='ResNet', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
        neck=dict(type='FPN', init_cfg=[dict(type='Xavier', layer='Conv2d'),
                                        dict(type='Pretrained', checkpoint='https://x.org/fpn.pth')])))
    with pytest.raises(compat.MissingCheckpointError) as e:
        compat.make_offline(cfg, offline=False)
    msg = str(e.value)
    assert "model.pretrained = 'open-mmlab://resnet50_v1c' has no local copy" in msg
    assert 'resnet50_v1c' in msg and '--offline' in msg and '2 more key(s)' in msg
    assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c'  # untouched by the error
    report = compat.make_offline(cfg, offline=True)
    assert report == {'model.pretrained': None,
                      'model.backbone.init_cfg.checkpoint': None,
                      'model.neck.init_cfg[1].checkpoint': None}
    assert cfg.model.pretrained is None
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.neck.init_cfg == [dict(type='Xavier', layer='Conv2d')]


def test_make_offline_uses_a_local_copy(monkeypatch, tmp_path):
    (tmp_path / 'resnet50-0676ba61.pth').write_bytes(b'x')
    (tmp_path / 'fpn.pth').write_bytes(b'x')
    monkeypatch.setattr(compat, 'checkpoint_dirs', lambda: [str(tmp_path)])
    cfg = _cfg(model=dict(
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
        neck=dict(init_cfg=dict(type='Pretrained', checkpoint='https://x.org/a/fpn.pth'))))
    compat.make_offline(cfg)
    assert cfg.model.backbone.init_cfg.checkpoint == str(tmp_path / 'resnet50-0676ba61.pth')
    assert cfg.model.neck.init_cfg.checkpoint == str(tmp_path / 'fpn.pth')


def test_persistent_workers_need_workers():
    cfg = _cfg(train_dataloader=dict(num_workers=0, persistent_workers=True),
               val_dataloader=dict(num_workers=2, persistent_workers=True))
    assert compat.fix_dataloaders(cfg) == ['train_dataloader']
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallback of --amp')
def test_amp_on_cpu_falls_back_to_fp32():
    cfg = _cfg(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    with pytest.warns(UserWarning, match='no CUDA'):
        assert compat.resolve_amp(cfg, requested=True) is False
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    cfg = _cfg(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic', optimizer={}))
    with pytest.warns(UserWarning):
        compat.resolve_amp(cfg, requested=False)
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallback')
def test_distributed_on_cpu_uses_gloo_bn_and_no_device_ids():
    cfg = _cfg(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl')),
               model=dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
                          decode_head=dict(norm_cfg=dict(type='SyncBN'))))
    with pytest.warns(UserWarning, match='without CUDA'):
        compat.fix_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model.backbone.norm_cfg.type == 'BN' and cfg.model.decode_head.norm_cfg.type == 'BN'
    assert cfg.model_wrapper_cfg.device_ids is None
    single = _cfg(launcher='none', env_cfg=dict(dist_cfg=dict(backend='nccl')))
    assert compat.fix_distributed(single) == []


def test_unsafe_checkpoints_need_an_explicit_trust(tmp_path, monkeypatch):
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'runner.pth')
    torch.save(dict(state_dict={'w': torch.ones(2)}, message_hub=dict(log=HistoryBuffer([1.0], [1])),
                    meta=dict(seed=np.int64(3))), path)
    safe = str(tmp_path / 'weights.pth')
    torch.save(dict(state_dict={'w': torch.ones(2)}, meta=dict(seed=3)), safe)
    compat.patch_checkpoint_loading()
    monkeypatch.delenv(compat.TRUST_CHECKPOINTS_ENV, raising=False)
    assert torch.equal(CheckpointLoader.load_checkpoint(safe)['state_dict']['w'], torch.ones(2))
    with pytest.raises(compat.UntrustedCheckpointError, match='pickles objects beyond weights .*numpy') as e:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert compat.TRUST_CHECKPOINTS_ENV in str(e.value)
    monkeypatch.setenv(compat.TRUST_CHECKPOINTS_ENV, '1')
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))
    with pytest.raises(FileNotFoundError, match='can not be found'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))


def test_numpy_in1d_alias_is_added_where_numpy_lacks_it():
    """numpy 2.4 has no ``in1d``: a stand-in module without it gets ``isin``; one that
    has it (the pinned numpy < 2.4) is left alone."""
    import types
    np24 = types.ModuleType('numpy24')
    np24.isin = np.isin
    assert compat.restore_numpy_aliases(np24) == ['in1d']
    assert np24.in1d is np.isin
    assert compat.restore_numpy_aliases(np24) == []  # in __dict__ now: idempotent
    older = types.ModuleType('numpy23')
    older.isin, older.in1d = np.isin, object()
    assert compat.restore_numpy_aliases(older) == [] and older.in1d is not np.isin


def test_numpy_in1d_alias():
    compat.restore_numpy_aliases()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        out = np.in1d(np.array([[1, 2], [3, 4]]), [2, 3])
    assert out.reshape(2, 2).tolist() == [[False, True], [True, False]]


def test_pkg_resources_stand_in_resolves_mmdet_bases(tmp_path):
    """With setuptools >= 82 there is no pkg_resources; `mmdet::` bases still resolve."""
    cfg = tmp_path / 'c.py'
    cfg.write_text("_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'\n")
    script = textwrap.dedent(f'''
        import importlib.machinery, sys
        real = importlib.machinery.PathFinder.find_spec
        def hide(name, path=None, target=None):
            return None if name == 'pkg_resources' else real(name, path, target)
        importlib.machinery.PathFinder.find_spec = staticmethod(hide)
        sys.modules.pop('pkg_resources', None)
        try:
            import pkg_resources
            raise SystemExit('pkg_resources should be hidden')
        except ImportError:
            pass
        from fusion_necks import compat
        assert compat.ensure_pkg_resources() is True
        import pkg_resources
        assert pkg_resources.__fusion_necks_stand_in__
        from mmengine.config import Config
        cfg = Config.fromfile({str(cfg)!r})
        assert cfg.model.backbone.depth == 18, cfg.model.backbone
        print('OK')
        ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'OK' in proc.stdout


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: what a crafted .pth can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_a_crafted_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'crafted.pth')
    torch.save({'state_dict': {}, 'x': _Payload(str(marker))}, path)
    assert not marker.exists()
    compat.patch_checkpoint_loading()
    monkeypatch.delenv(compat.TRUST_CHECKPOINTS_ENV, raising=False)
    with pytest.raises(compat.UntrustedCheckpointError, match='builtins.open|io.open'):
        CheckpointLoader.load_checkpoint(path)
    assert not marker.exists()  # the payload never ran


def test_runtime_patches_are_logged_once_each(monkeypatch):
    lines = []
    monkeypatch.setattr(compat, '_log', lambda level, msg: lines.append(msg))
    monkeypatch.setattr(compat, '_LOGGED_PATCHES', set())
    applied = compat.apply_runtime_patches()
    assert 'checkpoint_loading' in applied
    assert len(lines) == len(applied) and all(m.startswith('compat: ') for m in lines)
    assert compat.apply_runtime_patches() == applied and len(lines) == len(applied)
