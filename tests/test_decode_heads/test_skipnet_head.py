"""SkipNetHead: SkipNet's FCN-8s fusion, BAFF fusion, score/feature space, errors."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from fusion_necks.decode_heads.skipnet_head import (SkipNetHead, bilinear_upsample_kernel)
from fusion_necks.layers import BAFF

IN_CHANNELS = (32, 96, 320)  # MobileNetV2 out_indices=(2, 4, 6)
NUM_CLASSES = 19


def _head(**kwargs):
    cfg = dict(in_channels=IN_CHANNELS, in_index=(0, 1, 2), channels=320,
               num_classes=NUM_CLASSES, dropout_ratio=0)
    cfg.update(kwargs)
    return SkipNetHead(**cfg)


def _features(h=513, w=1025, batch=2, seed=0):
    """Backbone-like levels at 1/8, 1/16, 1/32 of an h x w image, with MobileNetV2's
    rounding (each stride-2 conv maps n to ceil(n / 2))."""
    g = torch.Generator().manual_seed(seed)
    sizes = []
    for _ in range(5):
        h, w = (h + 1) // 2, (w + 1) // 2
        sizes.append((h, w))
    # strides 2, 4, 8, 16, 32 -> take 8, 16, 32
    return [torch.randn(batch, c, *hw, generator=g) for c, hw in zip(IN_CHANNELS, sizes[2:])]


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_add_fusion_equals_independent_skipnet_reference():
    head = _head(fusion='add').eval()
    _randomise(head)  # not bilinear any more: the reference must use the learned kernels
    x8, x16, x32 = _features()
    assert x8.shape[-2:] == (65, 129) and x16.shape[-2:] == (33, 65)
    assert x32.shape[-2:] == (17, 33)
    p = dict(head.named_parameters())
    # SkipNet (fcn8s_mobilenet): score_fr on 1/32, deconv x2, + score(1/16), deconv x2,
    # + score(1/8); FCN-style crop of the deconv output to the skip's size.
    score32 = F.conv2d(x32, p['conv_seg.weight'], p['conv_seg.bias'])
    up = F.conv_transpose2d(score32, p['upsamplers.1.weight'], stride=2, padding=1)
    assert up.shape[-2:] == (34, 66)
    fuse16 = F.conv2d(x16, p['score_convs.1.weight'], p['score_convs.1.bias']) + up[..., :33, :65]
    up = F.conv_transpose2d(fuse16, p['upsamplers.0.weight'], stride=2, padding=1)
    ref = F.conv2d(x8, p['score_convs.0.weight'], p['score_convs.0.bias']) + up[..., :65, :129]
    with torch.no_grad():
        out = head((x8, x16, x32))
    assert out.shape == (2, NUM_CLASSES, 65, 129)
    torch.testing.assert_close(out, ref)


def test_transposed_convs_start_as_bilinear_upsampling():
    torch.testing.assert_close(bilinear_upsample_kernel(4)[0],
                               torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    for space, channels in (('score', 320), ('feature', 24)):
        head = _head(fusion_space=space, channels=channels)
        head.init_weights()  # mmseg's init must not undo the bilinear kernels
        for deconv in head.upsamplers:
            c = deconv.in_channels
            x = torch.randn(1, c, 9, 11)
            with torch.no_grad():
                got = deconv(x)
            ref = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
            # identical away from the border (the transposed conv zero-pads)
            torch.testing.assert_close(got[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])
            assert deconv.groups == (1 if space == 'score' else c)
        assert head.conv_seg.weight.std() < 0.05  # mmseg's N(0, 0.01) init was applied


def test_baff_head_forced_weights_reduce_to_shallow_or_deep_path():
    head = _head(fusion='baff').eval()
    feats = _features(97, 130)
    assert all(isinstance(f, BAFF) for f in head.fusions) and len(head.fusions) == 2
    assert all(f.channels == NUM_CLASSES and f.block_size == 8 for f in head.fusions)
    for fusion in head.fusions:
        with torch.no_grad():
            fusion.weight_logit.weight.zero_()
            fusion.weight_logit.bias.fill_(100.0)  # w = 1: trust the shallow scores
    with torch.no_grad():
        out = head(feats)
        shallow = head.score_convs[0](feats[0])
    torch.testing.assert_close(out, shallow, rtol=0, atol=0)
    for fusion in head.fusions:
        with torch.no_grad():
            fusion.weight_logit.bias.fill_(-100.0)  # w = 0: only the deep path
    with torch.no_grad():
        out = head(feats)
        deep = head.upsamplers[1](head.conv_seg(feats[2]))[..., :feats[1].shape[2],
                                                           :feats[1].shape[3]]
        deep = head.upsamplers[0](deep)[..., :feats[0].shape[2], :feats[0].shape[3]]
    torch.testing.assert_close(out, deep, rtol=0, atol=1e-30)


@pytest.mark.parametrize('space', ['score', 'feature'])
def test_loss_at_label_size_and_gradients_reach_every_parameter(space):
    torch.manual_seed(0)
    head = _head(fusion='baff', fusion_space=space, channels=320 if space == 'score' else 16,
                 norm_cfg=dict(type='BN'), baff_cfg=dict(block_size=4))
    feats = _features(97, 130)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, 97, 130)))
        samples.append(sample)
    logits = head(feats)
    assert logits.shape == (2, NUM_CLASSES, 13, 17)
    losses = head.loss(feats, samples, train_cfg=None)  # mmseg resizes to the label size
    assert set(losses) == {'loss_ce', 'acc_seg'} and torch.isfinite(losses['loss_ce'])
    losses['loss_ce'].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if space == 'feature':
        assert all(isinstance(f.stem_norm, torch.nn.BatchNorm2d) for f in head.fusions)


def test_predict_resizes_logits_to_the_image():
    head = _head(fusion='baff').eval()
    feats = _features(513, 1025, batch=1)
    metas = [dict(img_shape=(513, 1025), ori_shape=(513, 1025), pad_shape=(513, 1025))]
    with torch.no_grad():
        out = head.predict(feats, metas, test_cfg=None)
    assert out.shape == (1, NUM_CLASSES, 513, 1025)


def test_two_levels_and_round_down_backbones():
    # FCN-16s-like: two levels; a coarse map that rounds down (17 -> 34 vs 35) is resized.
    head = SkipNetHead(in_channels=(8, 16), in_index=(0, 1), channels=16, num_classes=3,
                       fusion='baff', baff_cfg=dict(block_size=2))
    out = head([torch.randn(1, 8, 35, 20), torch.randn(1, 16, 17, 10)])
    assert out.shape == (1, 3, 35, 20)


def test_inputs_not_at_x2_strides_raise_clearly():
    head = _head()
    # e.g. the dilated mobilenet-v2-d8 backbone: every level at 1/8
    feats = [torch.randn(1, c, 16, 16) for c in IN_CHANNELS]
    with pytest.raises(ValueError, match='x2 stride ratio'):
        head(feats)


@pytest.mark.parametrize('kwargs,match', [
    (dict(channels=64), 'channels must equal in_channels'),
    (dict(in_channels=(32, 96), in_index=(0, 1, 2)), 'in_index'),
    (dict(in_channels=(320,), in_index=(0,), channels=320), 'in_channels'),
    (dict(in_channels=320, in_index=2), 'in_channels'),
    (dict(fusion='concat'), 'fusion must be one of'),
    (dict(fusion_space='logits'), 'fusion_space'),
    (dict(baff_cfg=dict(block_size=8)), "only used with fusion='baff'"),
    (dict(fusion='baff', baff_cfg=dict(channels=19)), 'must not set channels'),
    (dict(fusion='baff', baff_cfg=dict(block_size=6)), 'block_size must be a power of two'),
    (dict(fusion='baff', baff_cfg=dict(block_size=0)), 'block_size'),
    (dict(input_transform='resize_concat'), 'multiple_select'),
    (dict(upsample_kernel_size=3), 'upsample_kernel_size'),
])
def test_bad_configuration_raises_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _head(**kwargs)


def test_baff_norm_follows_norm_cfg():
    head = _head(fusion='baff', norm_cfg=dict(type='GN', num_groups=1))
    assert isinstance(head.fusions[0].stem_norm, torch.nn.GroupNorm)
    head = _head(fusion='baff', baff_cfg=dict(norm_cfg=None))
    assert isinstance(head.fusions[0].stem_norm, torch.nn.Identity)
    head = _head(fusion='baff')  # norm_cfg None -> BN
    assert isinstance(head.fusions[0].stem_norm, torch.nn.BatchNorm2d)
