"""The one conv/norm/act builder of the plain layers (fusion_necks.layers.conv_norm_act):
layer specs as names, mmcv-style dicts or callables; ConvModule-compatible child names."""
from functools import partial

import pytest
import torch
from torch import nn

from fusion_necks.layers.conv_norm_act import (ConvNormAct, create_act_layer, create_norm_layer,
                                               get_act_layer, get_norm_layer, norm_abbr)
from fusion_necks.layers.sync_batch_norm import SyncBatchNorm


@pytest.mark.parametrize('spec, abbr, cls', [
    (dict(type='BN'), 'bn', nn.BatchNorm2d),
    ('bn', 'bn', nn.BatchNorm2d),
    (dict(type='GN', num_groups=2), 'gn', nn.GroupNorm),
    (dict(type='LN'), 'ln', nn.LayerNorm),
    (dict(type='IN'), 'in', nn.InstanceNorm2d),
    (dict(type=nn.BatchNorm2d), 'bn', nn.BatchNorm2d),   # a class as type, as mmcv allows
    (nn.BatchNorm2d, 'bn', nn.BatchNorm2d),
    (partial(nn.GroupNorm, 2), 'gn', nn.GroupNorm),
    (nn.LayerNorm, 'ln', nn.LayerNorm),
    (lambda c: nn.BatchNorm2d(c), 'norm', nn.BatchNorm2d),  # a factory that is not a class
])
def test_norm_specs(spec, abbr, cls):
    name, layer = create_norm_layer(spec, 8)
    assert name == abbr and isinstance(layer, cls)
    assert isinstance(get_norm_layer(spec)(8), cls)


def test_norm_none_sync_bn_and_requires_grad():
    assert create_norm_layer(None, 8) == (None, None) and get_norm_layer(None) is None
    name, layer = create_norm_layer(dict(type='SyncBN'), 4)
    assert name == 'bn' and isinstance(layer, nn.modules.batchnorm._BatchNorm)
    assert norm_abbr(SyncBatchNorm) == 'bn'
    _, frozen = create_norm_layer(dict(type='BN', requires_grad=False, momentum=0.3), 4)
    assert frozen.momentum == 0.3 and not any(p.requires_grad for p in frozen.parameters())


@pytest.mark.parametrize('spec, err, match', [
    (dict(type='XN'), ValueError, r"^norm_cfg type must be one of \('BN', "),
    (dict(num_groups=2), TypeError, 'must be a dict with a "type" key'),
    (dict(type='GN'), KeyError, 'needs num_groups'),
    (dict(type='GN', num_groups=3), ValueError, 'must divide the number of channels'),
    (3, TypeError, 'norm_cfg must be None, a name, a config dict or a callable'),
])
def test_norm_errors_name_the_argument(spec, err, match):
    with pytest.raises(err, match=match):
        create_norm_layer(spec, 8, name='norm_cfg')


def test_activation_specs_and_inplace():
    assert isinstance(create_act_layer('relu'), nn.ReLU)
    assert isinstance(create_act_layer('ReLU'), nn.ReLU)
    assert isinstance(create_act_layer(dict(type='GELU')), nn.GELU)
    leaky = create_act_layer(dict(type='LeakyReLU', negative_slope=0.1))
    assert leaky.negative_slope == 0.1 and not leaky.inplace
    assert create_act_layer(None) is None and get_act_layer(None) is None
    assert create_act_layer(nn.SiLU).__class__ is nn.SiLU
    # inplace: a default for layers that take it; a config's own key wins; GELU has none
    assert create_act_layer('relu', inplace=True).inplace
    assert not create_act_layer(dict(type='ReLU', inplace=False), inplace=True).inplace
    assert isinstance(create_act_layer('gelu', inplace=True), nn.GELU)
    with pytest.raises(ValueError, match=r"^act_cfg type must be one of \('ReLU', "):
        create_act_layer(dict(type='Swishy'), name='act_cfg')


def test_conv_norm_act_spellings_bias_and_shapes():
    torch.manual_seed(0)
    a = ConvNormAct(4, 8, 3, stride=2, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU)
    b = ConvNormAct(4, 8, 3, stride=2, norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'))
    assert list(a.state_dict()) == list(b.state_dict()) == [
        'conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var',
        'bn.num_batches_tracked']
    assert a.norm_name == 'bn' and a.conv.bias is None   # bias='auto': no bias before a norm
    assert ConvNormAct(4, 8).conv.bias is not None and ConvNormAct(4, 8).activate is None
    assert a(torch.randn(2, 4, 9, 7)).shape == (2, 8, 5, 4)
    with pytest.raises(ValueError, match='give norm_layer or norm_cfg, not both'):
        ConvNormAct(4, 8, norm_layer='bn', norm_cfg=dict(type='BN'))
    with pytest.raises(ValueError, match='norm_cfg type must be one of'):
        ConvNormAct(4, 8, norm_cfg=dict(type='XN'))


def test_conv_norm_act_around_another_conv():
    """conv_layer: the point decoder's PointConv -> LayerNorm -> ReLU, B x N x C tokens."""
    from fusion_necks.layers.point import PointConv
    block = ConvNormAct(8, 8, norm_layer=nn.LayerNorm, act_layer='relu', norm_name='norm',
                        conv_layer=partial(PointConv, num_neighbours=4))
    assert isinstance(block.conv, PointConv) and block.conv.linear.bias is None
    assert {k.split('.')[0] for k in block.state_dict()} == {'conv', 'norm'}
    assert isinstance(block.norm, nn.LayerNorm)   # the child, no property in the way
    pos = torch.stack(torch.meshgrid(torch.arange(4), torch.arange(5), indexing='xy'),
                      -1).reshape(1, -1, 2)
    feat = torch.randn(1, 20, 8)
    out = block(feat, pos, (4, 5))
    ref = torch.relu(block.norm(block.conv(feat, pos, (4, 5))))
    torch.testing.assert_close(out, ref)
    with pytest.raises(ValueError, match='with conv_layer set them in conv_layer'):
        ConvNormAct(8, 8, 3, conv_layer=partial(PointConv, num_neighbours=4))


def test_baff_takes_a_norm_cfg_or_a_callable():
    from fusion_necks.layers import BAFF
    torch.manual_seed(0)
    a = BAFF(4, norm_layer=dict(type='BN'))
    torch.manual_seed(0)
    b = BAFF(4)
    assert a.state_dict().keys() == b.state_dict().keys()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert isinstance(BAFF(4, norm_layer=None).stem_norm, nn.Identity)
