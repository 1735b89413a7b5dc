"""configs/_base_/models/aff-*.py: one AutoFocusFormer backbone dict per size, and every
AFF config's backbone is that dict plus its task keys (alpha, out_dense, drop path)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from fusion_necks.backbones.autofocusformer import AFF_ARCH_SETTINGS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASES = sorted(glob.glob(osp.join(ROOT, 'configs', '_base_', 'models', 'aff-*.py')))
# the keys a config may set on top of its size's backbone dict
TASK_KEYS = {'alpha', 'out_dense', 'drop_path_rate'}


def _backbone_of(path):
    cfg = Config.fromfile(path)
    assert len(cfg) == 1, list(cfg)   # one variable, aff_<size>_backbone
    (name, backbone), = cfg.items()
    return name, backbone


def test_one_backbone_dict_per_size():
    sizes = {osp.basename(p)[len('aff-'):-len('.py')] for p in BASES}
    assert {'mini', 'tiny', 'small', 'base'} <= sizes
    for path in BASES:
        name, backbone = _backbone_of(path)
        size = osp.basename(path)[len('aff-'):-len('.py')].replace('-', '_')
        assert name == f'aff_{size}_backbone'
        assert backbone.type == 'AutoFocusFormer' and backbone.arch == size
        assert backbone.arch in AFF_ARCH_SETTINGS


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(ROOT, 'configs', 'autofocusformer',
                                                           '*.py'))),
                         ids=osp.basename)
def test_every_aff_config_uses_its_size_base(path):
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    size = backbone.arch
    base = cfg[f'aff_{size}_backbone']   # inherited through _base_
    changed = {k for k in set(base) | set(backbone) if base.get(k) != backbone.get(k)}
    assert changed <= TASK_KEYS, changed
    assert cfg.checkpoint_file == base.init_cfg.checkpoint
