"""ASFFNeck: registry, chaining after FPN / YOLOV3Neck, the official modules of
configs/_base_/necks/asff_official.py, official weights."""
import functools
import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.layers import set_fusion_weight_recording
from fusion_necks.necks.asff_neck import ASFFNeck
from fusion_necks.necks.asff_official_weights import (convert_official_asff, official_asff_key,
                                                      official_asff_key_map)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYRAMID_800 = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]   # P3..P7 of 800x1344
OFFICIAL_CFG = osp.join(ROOT, 'configs', '_base_', 'necks', 'asff_official.py')


@functools.lru_cache()
def _official_cfgs():
    from mmengine.config import Config
    return Config.fromfile(OFFICIAL_CFG).to_dict()


def official_cfg(name: str = 'official', **overrides) -> dict:
    """``asff_<name>`` of configs/_base_/necks/asff_official.py, with ``overrides``."""
    return dict(_official_cfgs()[f'asff_{name}'], **overrides)


def official_neck(name: str = 'official', **overrides) -> ASFFNeck:
    kwargs = official_cfg(name, **overrides)
    assert kwargs.pop('type') == 'ASFFNeck'
    return ASFFNeck(**kwargs)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name.endswith('num_batches_tracked'):
                t.fill_(7)
            elif name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.05)
    return module


# ------------------------------------------------------------------ independent official module
# Written from the official ASFF code's structure (official names, official
# level order: 0 = stride 32, channels 512/256/256, fixed scale-factor upsampling).

def _add_conv(cin, cout, k, stride, c_act=nn.LeakyReLU(0.1)):
    seq = nn.Sequential()
    seq.add_module('conv', nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False))
    seq.add_module('batch_norm', nn.BatchNorm2d(cout))
    seq.add_module('leaky', c_act)
    return seq


class RefOfficialASFF(nn.Module):

    def __init__(self, level, compress_c=16, dims=(512, 256, 256)):
        super().__init__()
        self.level = level
        d = dims[level]
        if level == 0:
            self.stride_level_1 = _add_conv(dims[1], d, 3, 2)
            self.stride_level_2 = _add_conv(dims[2], d, 3, 2)
            self.expand = _add_conv(d, 1024, 3, 1)
        elif level == 1:
            self.compress_level_0 = _add_conv(dims[0], d, 1, 1)
            self.stride_level_2 = _add_conv(dims[2], d, 3, 2)
            self.expand = _add_conv(d, 512, 3, 1)
        else:
            self.compress_level_0 = _add_conv(dims[0], d, 1, 1)
            if dims[1] != d:
                self.compress_level_1 = _add_conv(dims[1], d, 1, 1)
            self.expand = _add_conv(d, 256, 3, 1)
        for i in range(3):
            setattr(self, f'weight_level_{i}', _add_conv(d, compress_c, 1, 1))
        self.weight_levels = nn.Conv2d(3 * compress_c, 3, 1)

    def forward(self, x0, x1, x2):
        if self.level == 0:
            r = [x0, self.stride_level_1(x1),
                 self.stride_level_2(F.max_pool2d(x2, 3, stride=2, padding=1))]
        elif self.level == 1:
            r = [F.interpolate(self.compress_level_0(x0), scale_factor=2, mode='nearest'), x1,
                 self.stride_level_2(x2)]
        else:
            up1 = self.compress_level_1(x1) if hasattr(self, 'compress_level_1') else x1
            r = [F.interpolate(self.compress_level_0(x0), scale_factor=4, mode='nearest'),
                 F.interpolate(up1, scale_factor=2, mode='nearest'), x2]
        v = torch.cat([getattr(self, f'weight_level_{i}')(r[i]) for i in range(3)], 1)
        w = F.softmax(self.weight_levels(v), dim=1)
        return self.expand(r[0] * w[:, 0:1] + r[1] * w[:, 1:2] + r[2] * w[:, 2:])


class RefYOLOv3ASFF(nn.Module):
    """The attribute names of the official YOLOv3 model around the fusion modules."""

    def __init__(self, compress_c=16):
        super().__init__()
        for lvl in range(3):
            setattr(self, f'level_{lvl}_fusion', RefOfficialASFF(lvl, compress_c))
        self.module_list = nn.ModuleList([nn.Conv2d(3, 4, 3)])   # stands for Darknet

    def forward(self, x0, x1, x2):
        return [getattr(self, f'level_{lvl}_fusion')(x0, x1, x2) for lvl in range(3)]


# ------------------------------------------------------------------ official modules, counts


@pytest.mark.parametrize('name, counts', [
    ('official', [7_106_803, 1_915_123, 734_451]),
    ('official_rfb', [7_094_395, 1_908_859, 728_187]),
])
def test_official_config_parameters_per_level_match_the_official_module(name, counts):
    neck = official_neck(name)
    assert [n_params(neck.fusions[str(lvl)]) for lvl in range(3)] == counts
    # and our independent rebuild of the official module agrees
    c = 8 if name == 'official_rfb' else 16
    assert [n_params(RefOfficialASFF(lvl, c)) for lvl in range(3)] == counts


def _uniform_expected(n, c=256, cc=16, coarse_1x1=True):
    """Per-level parameter count from the layer definitions (design notes §2.2)."""
    conv3 = c * c * 9 + 2 * c
    conv1 = c * c + 2 * c
    weight = n * (c * cc + 2 * cc) + (n * cc * n + n)
    return [l * conv3 + (n - 1 - l) * conv1 * coarse_1x1 + weight + conv3 for l in range(n)]


@pytest.mark.parametrize('n, cc, coarse, millions', [
    (3, 16, 'always', 3.78), (3, 16, 'auto', 3.58), (4, 16, 'always', 6.37),
    (4, 16, 'auto', 5.97), (5, 16, 'always', 9.62), (5, 16, 'auto', 8.96),
    (5, 2, 'always', 9.53), (5, 2, 'auto', 8.87)])
def test_uniform_256_parameter_counts_match_the_design_notes(n, cc, coarse, millions):
    neck = ASFFNeck(in_channels=256, num_levels=n, compress_c=cc, coarser_conv=coarse)
    per_level = [n_params(neck.fusions[str(i)]) for i in range(n)]
    assert per_level == _uniform_expected(n, cc=cc, coarse_1x1=coarse == 'always')
    assert round(sum(per_level) / 1e6, 2) == millions
    if (n, cc, coarse) == (5, 16, 'always'):
        assert [round(p / 1e6, 2) for p in per_level] == [0.88, 1.40, 1.92, 2.45, 2.97]


def test_simple_neck_weight_prediction_params():
    neck = ASFFNeck(in_channels=256, num_levels=3, weight_mode='simple')
    for f in neck.fusions.values():
        assert sum(n_params(s.weight) for s in f.sources.values()) == 771


def test_yolov3_config_is_the_official_module_without_expand():
    """configs/_base_/necks/asff_yolov3.py: the official module's keys, at YOLOV3Neck's
    widths (512/256/128) and without the expand conv (the head's 3x3 bridge is it)."""
    from mmengine.config import Config
    yolo = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'necks',
                                    'asff_yolov3.py')).asff_neck.to_dict()
    official = official_cfg()
    assert yolo['input_order'] == official['input_order'] == 'coarse_to_fine'
    assert yolo['coarser_conv'] == official['coarser_conv'] == 'auto'
    assert yolo.get('compress_c', 16) == official['compress_c'] == 16
    assert yolo['in_channels'] == yolo['out_channels'] == [512, 256, 128]
    assert yolo['expand_kernel'] is None
    assert set(yolo) <= set(official) | {'expand_kernel', 'level_names'}


def test_config_keys_override_the_official_module():
    neck = official_neck(compress_c=8, norm_cfg=dict(type='GN', num_groups=16))
    assert neck.fusions['0'].weight_levels.in_channels == 24
    assert neck.fusions['0'].expand.norm_name == 'gn'
    assert neck.input_order == 'coarse_to_fine' and neck.out_channels == [1024, 512, 256]


# ------------------------------------------------------------------ official weights


def test_official_weights_load_and_reproduce_the_official_outputs():
    torch.manual_seed(0)
    ref = randomise_(RefYOLOv3ASFF()).eval()
    neck = official_neck('official').eval()
    # as saved by the official training script (DataParallel prefix, 'model' key)
    ckpt = {'model': {'module.' + k: v for k, v in ref.state_dict().items()}}
    converted, unused = convert_official_asff(ckpt['model'])
    assert unused == ['module.module_list.0.weight', 'module.module_list.0.bias']
    missing, unexpected = neck.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    xs = [torch.randn(2, 512, 4, 6), torch.randn(2, 256, 8, 12), torch.randn(2, 256, 16, 24)]
    with torch.no_grad():
        expected = ref(*xs)
        out = neck(tuple(xs))
    assert isinstance(out, tuple)
    for o, e in zip(out, expected):
        torch.testing.assert_close(o, e, rtol=1e-5, atol=1e-5)


def test_official_mobile_weights_map_too():
    ref = nn.ModuleDict({f'level_{lvl}_fusion': RefOfficialASFF(lvl, 16, (512, 256, 128))
                         for lvl in range(3)})
    neck = official_neck('official_mobile')
    assert hasattr(ref['level_2_fusion'], 'compress_level_1')
    converted, unused = convert_official_asff(ref.state_dict())
    assert not unused
    neck.load_state_dict(converted, strict=True)


def test_official_key_names():
    assert official_asff_key('level_0_fusion.stride_level_2.batch_norm.running_var') == \
        'fusions.0.sources.2.resize.0.bn.running_var'
    assert official_asff_key('level_1_fusion.compress_level_0.conv.weight') == \
        'fusions.1.sources.0.resize.0.conv.weight'
    assert official_asff_key('level_2_fusion.weight_level_1.conv.weight') == \
        'fusions.2.sources.1.weight.conv.weight'
    assert official_asff_key('level_2_fusion.weight_levels.bias') == \
        'fusions.2.weight_levels.bias'
    assert official_asff_key('level_0_fusion.expand.batch_norm.weight') == \
        'fusions.0.expand.bn.weight'
    with pytest.raises(KeyError):
        official_asff_key('level_0_fusion.expand.leaky.weight')
    with pytest.raises(KeyError):
        official_asff_key('module_list.0.weight')
    keys = official_asff_key_map(['module.level_1_fusion.weight_levels.weight', 'x.y'])
    assert keys == {'module.level_1_fusion.weight_levels.weight': 'fusions.1.weight_levels.weight'}
    with pytest.raises(ValueError, match='no level_<L>_fusion'):
        convert_official_asff({'module_list.0.weight': torch.zeros(1)})


def test_converter_tool(tmp_path):
    ref = randomise_(RefYOLOv3ASFF(compress_c=8))
    src = tmp_path / 'official.pth'
    torch.save({'epoch': 3, 'model': ref.state_dict()}, src)
    dst = tmp_path / 'converted.pth'
    spec = importlib.util.spec_from_file_location(
        'asff2fusion', osp.join(ROOT, 'tools', 'model_converters', 'asff2fusion.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(src), str(dst), '--prefix', 'neck.1.'])
    state = torch.load(dst, map_location='cpu')['state_dict']
    assert all(k.startswith('neck.1.fusions.') for k in state)
    neck = official_neck('official_rfb')
    neck.load_state_dict({k[len('neck.1.'):]: v for k, v in state.items()}, strict=True)
    torch.testing.assert_close(neck.fusions['1'].sources['0'].resize[0].conv.weight,
                               ref.level_1_fusion.compress_level_0.conv.weight)


# ------------------------------------------------------------------ neck behaviour


def test_registered_in_mmdet_and_mmseg():
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert DET.get('ASFFNeck') is ASFFNeck and SEG.get('ASFFNeck') is ASFFNeck
    seg = SEG.build(dict(type='ASFFNeck', in_channels=[8, 16], out_channels=8))
    assert isinstance(seg, ASFFNeck) and seg.out_channels == [8, 8]


def test_after_fpn_as_mmdet_neck_list():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    necks = MODELS.build([
        dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=16, start_level=1,
             add_extra_convs='on_input', num_outs=5),
        dict(type='ASFFNeck', in_channels=16, num_levels=5, fuse_levels=[0, 1, 2],
             norm_cfg=dict(type='GN', num_groups=4))]).eval()
    h, w = 800 // 4, 1344 // 4
    feats = tuple(torch.randn(1, c, -(-h // 2**i), -(-w // 2**i))
                  for i, c in enumerate([8, 16, 32, 64]))
    with torch.no_grad():
        fpn_out = necks[0](feats)
        out = necks(feats)
    assert isinstance(out, tuple) and len(out) == 5
    assert [tuple(o.shape[-2:]) for o in out] == PYRAMID_800
    assert all(o.shape[1] == 16 for o in out)
    # P6/P7 pass through untouched, P3-P5 are fused
    torch.testing.assert_close(out[3], fpn_out[3])
    torch.testing.assert_close(out[4], fpn_out[4])
    assert not torch.allclose(out[0], fpn_out[0])


def test_after_yolov3_neck_coarse_to_fine():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    necks = MODELS.build([
        dict(type='YOLOV3Neck', num_scales=3, in_channels=[64, 32, 16],
             out_channels=[32, 16, 8]),
        official_cfg(in_channels=[32, 16, 8], out_channels=[32, 16, 8],
                     expand_kernel=None)]).eval()
    feats = (torch.randn(1, 16, 32, 40), torch.randn(1, 32, 16, 20), torch.randn(1, 64, 8, 10))
    set_fusion_weight_recording(necks)
    with torch.no_grad():
        out = necks(feats)
    assert [tuple(o.shape) for o in out] == [(1, 32, 8, 10), (1, 16, 16, 20), (1, 8, 32, 40)]
    maps = necks[1].fusion_weight_maps()
    assert list(maps) == ['L0', 'L1', 'L2']
    assert [tuple(m.shape) for m in maps.values()] == [(1, 3, 8, 10), (1, 3, 16, 20),
                                                       (1, 3, 32, 40)]
    # coarse_to_fine: at the stride-8 level the stride-32 source is the upsampled one
    assert necks[1].fusions['2'].sources['0'].scale_step == -2
    assert necks[1].fusions['0'].sources['2'].pool_steps == (2, )


def test_returns_the_input_container_type_and_records_weights():
    neck = ASFFNeck(in_channels=[4, 8, 8], out_channels=[6, 8, 8], fuse_range=1,
                    level_names=['P3', 'P4', 'P5']).eval()
    feats = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    set_fusion_weight_recording(neck)
    with torch.no_grad():
        out = neck(feats)
    assert isinstance(out, list) and [o.shape[1] for o in out] == [6, 8, 8]
    maps = neck.fusion_weight_maps()
    assert [m.shape[1] for m in maps.values()] == [2, 3, 2]   # fuse_range=1
    for m in maps.values():
        torch.testing.assert_close(m.sum(1), torch.ones_like(m[:, 0]))
    assert neck.fusions['0'].fusion_source_labels == ['P3', 'P4']
    with pytest.raises(TypeError, match='tuple/list'):
        neck(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match='built for 3 levels'):
        neck(feats[:2])


def test_every_neck_parameter_gets_a_gradient():
    neck = ASFFNeck(in_channels=[8, 8, 16, 16], out_channels=8, inter_channels=8,
                    expand_kernel=1, finer_resize='conv').train()
    feats = [torch.randn(2, c, 2**(5 - i), 2**(5 - i)) for i, c in enumerate([8, 8, 16, 16])]
    sum((o * torch.randn_like(o)).sum() for o in neck(feats)).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_init_weights_follows_the_official_init():
    neck = ASFFNeck(in_channels=64, num_levels=3)
    with torch.no_grad():
        for p in neck.parameters():
            p.fill_(0.5)
    neck.init_weights()
    w = neck.fusions['1'].expand.conv.weight
    fan_in = w.shape[1] * 9
    expected_std = (2 / (1 + 0.1**2) / fan_in) ** 0.5
    assert abs(w.std().item() - expected_std) / expected_std < 0.1
    assert torch.all(neck.fusions['1'].weight_levels.bias == 0)
    assert torch.all(neck.fusions['1'].expand.bn.weight == 1)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=256), 'num_levels is required'),
    (dict(in_channels=[256, 256, 256], num_levels=4), r'in_channels has 3 entries'),
    (dict(in_channels=256, num_levels=5, out_channels=[256] * 4), r'out_channels has 4'),
    (dict(in_channels=256, num_levels=1), 'num_levels must be an int >= 2'),
    (dict(in_channels=256, num_levels=3, fuse_levels=[0, 3]), 'fuse_levels'),
    (dict(in_channels=256, num_levels=3, fuse_levels=[1]), 'fuse_levels'),
    (dict(in_channels=[8, 8, 8], out_channels=[8, 8, 4], fuse_levels=[0, 1]),
     r'out_channels\[2\] \(4\) must equal in_channels\[2\] \(8\)'),
    (dict(in_channels=8, num_levels=3, source_levels=[[0, 1]]), 'one list per fused level'),
    (dict(in_channels=8, num_levels=3, fuse_levels=[0, 1],
          source_levels=[[0, 1], [1, 2]]), 'not in fuse_levels'),
    (dict(in_channels=8, num_levels=3, fuse_range=0), 'fuse_range'),
    (dict(in_channels=8, num_levels=3, inter_channels=[8, 8]), 'inter_channels has 2'),
    (dict(in_channels=8, num_levels=3, weight_mode='sum'), 'weight_mode'),
    (dict(in_channels=8, num_levels=3, input_order='top_down'), 'input_order'),
    (dict(in_channels=8, num_levels=3, level_names=['P3']), 'level_names'),
    (dict(), 'in_channels is required'),
    (dict(in_channels=8, num_levels=2, out_channels=4, expand_kernel=None), 'expand'),
])
def test_mismatched_configuration_fails_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ASFFNeck(**kwargs)
