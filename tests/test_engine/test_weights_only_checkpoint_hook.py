"""WeightsOnlyCheckpointHook: Runner checkpoints that torch.load(weights_only=True) reads,
and that give back the same message hub when a Runner loads them."""
import pickle
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

from fusion_necks.engine.weights_only_checkpoint_hook import (WeightsOnlyCheckpointHook,
                                                              from_weights_only, to_weights_only)


def _message_hub_like():
    buf = HistoryBuffer(max_length=7)
    for v, c in [(1.5, 1), (2.25, 2), (3.0, 1)]:
        buf.update(v, c)
    return {
        'meta': {'seed': 3, 'dataset_meta': {'classes': ('a', 'b'), 'palette': [(1, 2, 3)]},
                 'arr': np.arange(6, dtype=np.int32).reshape(2, 3), 'scalar': np.float32(0.5)},
        'message_hub': {'log_scalars': OrderedDict([('train/loss', buf)]),
                        'runtime_info': OrderedDict([('iter', np.int64(12)), ('max_iters', 20)]),
                        'resumed_keys': OrderedDict([('train/loss', True)])},
        'state_dict': OrderedDict([('w', torch.randn(2, 2))]),
    }


def test_roundtrip_is_weights_only_loadable_and_exact(tmp_path):
    ckpt = _message_hub_like()
    original_buf = ckpt['message_hub']['log_scalars']['train/loss']
    path = tmp_path / 'c.pth'
    # the upstream form does not load with weights_only=True
    torch.save(ckpt, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    hook = WeightsOnlyCheckpointHook()
    safe = dict(ckpt)
    hook.before_save_checkpoint(None, safe)
    torch.save(safe, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    loaded = torch.load(path, weights_only=True)
    hook.after_load_checkpoint(None, loaded)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.max_length == 7
    for a, b in zip(buf.data, original_buf.data):
        np.testing.assert_array_equal(a, b)
    assert buf.mean() == original_buf.mean() and buf.current() == 3.0
    assert isinstance(loaded['message_hub']['log_scalars'], OrderedDict)
    assert loaded['message_hub']['runtime_info']['iter'] == 12
    np.testing.assert_array_equal(loaded['meta']['arr'], ckpt['meta']['arr'])
    assert loaded['meta']['arr'].dtype == np.int32
    assert loaded['meta']['dataset_meta'] == ckpt['meta']['dataset_meta']
    torch.testing.assert_close(loaded['state_dict']['w'], ckpt['state_dict']['w'])


def test_plain_values_pass_through_unchanged():
    obj = {'a': [1, 2.5, 'x', None, (3, 4)], 't': torch.ones(2)}
    out = from_weights_only(to_weights_only(obj))
    assert pickle.dumps(out['a']) == pickle.dumps(obj['a'])
    assert out['t'] is obj['t']


def test_apply_config_compat_adds_the_hook_once():
    from mmengine.config import Config

    from fusion_necks.compat import apply_config_compat
    cfg = Config(dict(model=dict(type='X'), custom_hooks=[dict(type='EMAHook')]))
    assert apply_config_compat(cfg)['weights_only_checkpoints'] is True
    assert apply_config_compat(cfg)['weights_only_checkpoints'] is False
    types = [h['type'] for h in cfg.custom_hooks]
    assert types == ['EMAHook', 'WeightsOnlyCheckpointHook']


def test_registered_in_mmengine_hooks():
    import fusion_necks.registry  # noqa: F401  (registers our modules)
    from mmengine.registry import HOOKS
    assert HOOKS.get('WeightsOnlyCheckpointHook') is WeightsOnlyCheckpointHook
