"""BAFF (Block Adaptive Feature Fusion): equations, block structure, gradients, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from fusion_necks.layers import (BAFF, iter_fusion_weight_maps,
                                 set_fusion_weight_recording)
from fusion_necks.layers.baff import PairVolumeConv3d


def _pair(c=5, h=37, w=50, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)


def _force_weight(module: BAFF, logit: float) -> None:
    with torch.no_grad():
        module.weight_logit.weight.zero_()
        module.weight_logit.bias.fill_(logit)


@pytest.mark.parametrize('weight_net', ['conv3d', 'conv2d'])
@pytest.mark.parametrize('block_size', [1, 4, 8, 16])
def test_weights_in_unit_interval_and_constant_per_block(weight_net, block_size):
    torch.manual_seed(0)
    h, w = 37, 50  # divisible by none of 4, 8, 16
    baff = BAFF(5, block_size=block_size, weight_net=weight_net)
    s, d = _pair(5, h, w)
    out, weights = baff(s, d, return_weights=True)
    assert out.shape == s.shape and weights.shape == (2, 1, h, w)
    assert weights.dtype == s.dtype
    assert (weights > 0).all() and (weights < 1).all()
    # One weight per block: the grid is ceil(H/b) x ceil(W/b), blocks anchored top-left.
    grid = baff.block_weights(s, d)
    assert grid.shape == (2, 1, math.ceil(h / block_size), math.ceil(w / block_size))
    rows = torch.arange(h) // block_size
    cols = torch.arange(w) // block_size
    expected = grid[:, :, rows][:, :, :, cols]
    torch.testing.assert_close(weights, expected, rtol=0, atol=0)
    # Directly: every pixel equals the top-left pixel of its block (last blocks truncated).
    anchors = weights[:, :, rows * block_size][:, :, :, cols * block_size]
    assert torch.equal(weights, anchors)
    if block_size > 1:  # and the map is not constant overall (the weights do vary)
        assert grid.std() > 0
    # The fusion equation, against the returned weights.
    torch.testing.assert_close(out, weights * s + (1 - weights) * d)


def test_forcing_weights_selects_shallow_or_deep():
    baff = BAFF(7, block_size=8)
    s, d = _pair(7, 40, 24)
    _force_weight(baff, 100.0)  # sigmoid(100) == 1 in float32
    assert torch.equal(baff(s, d), s)
    _force_weight(baff, -100.0)  # sigmoid(-100) ~ 4e-44
    torch.testing.assert_close(baff(s, d), d, rtol=0, atol=1e-30)
    _force_weight(baff, 0.0)  # w = 0.5: the mean of the two maps
    torch.testing.assert_close(baff(s, d), 0.5 * (s + d))


@pytest.mark.parametrize('weight_net,block_size', [('conv3d', 8), ('conv3d', 1),
                                                   ('conv3d', 16), ('conv2d', 8)])
def test_every_parameter_and_both_inputs_get_gradients(weight_net, block_size):
    torch.manual_seed(1)
    baff = BAFF(19, block_size=block_size, weight_net=weight_net)
    s, d = _pair(19, 45, 67)
    s.requires_grad_(True)
    d.requires_grad_(True)
    out = baff(s, d)
    (out * torch.randn_like(out)).sum().backward()
    params = dict(baff.named_parameters())
    assert params, 'BAFF has no parameters'
    for name, p in params.items():
        assert p.grad is not None, f'{name} got no gradient'
        assert p.grad.abs().sum() > 0, f'{name} got a zero gradient'
    assert s.grad.abs().sum() > 0 and d.grad.abs().sum() > 0


def test_pair_volume_conv3d_equals_conv3d_on_interleaved_volume():
    torch.manual_seed(2)
    conv = PairVolumeConv3d(3, kernel_size=3, stride=2)
    s, d = _pair(4, 13, 18)
    # Independent construction of the H x W x 2C volume: depth 2c is S_c, 2c+1 is D_c.
    volume = torch.empty(2, 1, 8, 13, 18)
    volume[:, 0, 0::2] = s
    volume[:, 0, 1::2] = d
    ref = F.conv3d(volume, conv.weight, conv.bias, stride=(2, 2, 2), padding=(0, 1, 1))
    torch.testing.assert_close(conv(volume), ref)
    # BAFF builds the same volume from (S, D).
    baff = BAFF(4, block_size=2, mid_channels=3)
    baff.stem.load_state_dict(conv.state_dict())
    got = torch.relu(baff.stem(torch.stack((s, d), 2).reshape(2, 1, 8, 13, 18)))
    torch.testing.assert_close(got, torch.relu(ref))


def test_parameter_count_is_compact_and_independent_of_channels():
    def expected(channels, b, m, k, net, norm):
        steps = int(math.log2(b))
        stem = (2 * k * k * m + m) if net == 'conv3d' else (2 * channels * k * k * m + m)
        depthwise = m * k * k  # no bias
        pointwise = m * m + (0 if norm else m)  # no bias before a norm
        stage = depthwise + pointwise + (2 * m if norm else 0)
        return stem + (2 * m if norm else 0) + max(steps - 1, 0) * stage + (m + 1)

    for channels, b, m, k, net, norm in [
            (19, 8, 2, 3, 'conv3d', True), (64, 8, 2, 3, 'conv3d', True),
            (19, 16, 4, 5, 'conv3d', True), (19, 1, 2, 3, 'conv3d', True),
            (19, 8, 2, 3, 'conv2d', True), (19, 8, 2, 3, 'conv3d', False),
            (19, 4, 3, 3, 'conv2d', False)]:
        baff = BAFF(channels, block_size=b, mid_channels=m, kernel_size=k, weight_net=net,
                    norm_layer=torch.nn.BatchNorm2d if norm else None)
        assert sum(p.numel() for p in baff.parameters()) == expected(channels, b, m, k, net,
                                                                     norm)
    # Default BAFF of BAFF-SkipNet (19 classes, 8x8 blocks): 97 parameters, whatever C.
    assert sum(p.numel() for p in BAFF(19).parameters()) == 97
    assert sum(p.numel() for p in BAFF(256).parameters()) == 97


def test_recording_weights_for_visualisation():
    baff = BAFF(3, block_size=4)
    s, d = _pair(3, 21, 30, b=1)
    baff(s, d)
    assert list(iter_fusion_weight_maps(baff)) == []  # off by default
    assert set_fusion_weight_recording(baff, True) == 1
    _, weights = baff(s, d, return_weights=True)
    maps = list(iter_fusion_weight_maps(baff))
    assert [(m, n) for m, n, _ in maps] == [('', 'weights')]
    assert maps[0][2].shape == (1, 1, 21, 30) and not maps[0][2].requires_grad
    torch.testing.assert_close(maps[0][2], weights)
    set_fusion_weight_recording(baff, False)
    assert list(iter_fusion_weight_maps(baff)) == []


@pytest.mark.parametrize('kwargs,match', [
    (dict(block_size=0), 'block_size'),
    (dict(block_size=3), 'block_size must be a power of two'),
    (dict(block_size=6), 'block_size must be a power of two'),
    (dict(block_size=-8), 'block_size'),
    (dict(block_size=8.0), 'block_size'),
    (dict(block_size=True), 'block_size'),
    (dict(kernel_size=2), 'kernel_size must be odd'),
    (dict(mid_channels=0), 'mid_channels'),
    (dict(weight_net='mlp'), 'weight_net'),
])
def test_bad_construction_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BAFF(19, **kwargs)
    with pytest.raises(ValueError, match='channels'):
        BAFF(0)


def test_mismatched_inputs_raise_clearly():
    baff = BAFF(4)
    s, d = _pair(4, 16, 16)
    with pytest.raises(ValueError, match='same shape'):
        baff(s, d[:, :, :8])
    with pytest.raises(ValueError, match=r'B x 4 x H x W'):
        baff(s[:, :3], d[:, :3])
