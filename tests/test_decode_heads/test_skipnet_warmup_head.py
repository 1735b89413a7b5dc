"""SkipNetWarmupHead (phase 1): SkipNetHead's score-layer names, per-level losses, predict."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from fusion_necks.decode_heads.skipnet_head import SkipNetHead
from fusion_necks.decode_heads.skipnet_warmup_head import SkipNetWarmupHead

IN_CHANNELS = (32, 96, 320)
NUM_CLASSES = 19


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _warmup(**kwargs):
    cfg = dict(in_channels=IN_CHANNELS, in_index=(0, 1, 2), channels=320,
               num_classes=NUM_CLASSES, dropout_ratio=0)
    cfg.update(kwargs)
    return SkipNetWarmupHead(**cfg)


def _features(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = ((17, 33), (9, 17), (5, 9))  # 1/8, 1/16, 1/32 of a 129 x 257 image
    return [torch.randn(batch, c, *hw, generator=g) for c, hw in zip(IN_CHANNELS, sizes)]


def test_score_layers_have_the_names_and_shapes_of_skipnet_head():
    warm = _warmup().state_dict()
    for fusion in ('add', 'baff'):
        skip = SkipNetHead(in_channels=IN_CHANNELS, in_index=(0, 1, 2), channels=320,
                           num_classes=NUM_CLASSES, dropout_ratio=0, fusion=fusion).state_dict()
        assert set(warm) == {'conv_seg.weight', 'conv_seg.bias', 'score_convs.0.weight',
                             'score_convs.0.bias', 'score_convs.1.weight', 'score_convs.1.bias'}
        assert set(warm) <= set(skip)
        assert all(warm[k].shape == skip[k].shape for k in warm)


def test_forward_gives_one_score_map_per_level():
    head = _warmup().eval()
    feats = _features()
    with torch.no_grad():
        out = head(feats)
    p = dict(head.named_parameters())
    refs = [F.conv2d(feats[0], p['score_convs.0.weight'], p['score_convs.0.bias']),
            F.conv2d(feats[1], p['score_convs.1.weight'], p['score_convs.1.bias']),
            F.conv2d(feats[2], p['conv_seg.weight'], p['conv_seg.bias'])]
    assert len(out) == 3
    for o, r in zip(out, refs):
        torch.testing.assert_close(o, r)


def test_each_level_has_its_own_cross_entropy_and_all_get_gradients():
    head = _warmup()
    g = torch.Generator().manual_seed(1)
    label = torch.randint(0, NUM_CLASSES, (2, 1, 129, 257), generator=g)
    label[:, :, :10] = 255  # ignored
    samples = [SegDataSample(gt_sem_seg=PixelData(data=label[i])) for i in range(2)]
    feats = _features()
    losses = head.loss_by_feat(head(feats), samples)
    assert {k for k in losses if k.startswith('loss')} == {'loss_ce_lvl0', 'loss_ce_lvl1',
                                                          'loss_ce_lvl2'}
    assert {k for k in losses if k.startswith('acc')} == {'acc_seg_lvl0', 'acc_seg_lvl1',
                                                         'acc_seg_lvl2'}
    with torch.no_grad():
        logits = head(feats)
    for level, lg in enumerate(logits):
        up = F.interpolate(lg, size=(129, 257), mode='bilinear', align_corners=False)
        # mmseg's default (avg_non_ignore=False): mean over all pixels, ignored ones as 0
        ref = F.cross_entropy(up, label[:, 0], ignore_index=255, reduction='none').mean()
        torch.testing.assert_close(losses[f'loss_ce_lvl{level}'].detach(), ref)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_predict_uses_the_chosen_level():
    feats = _features(batch=1)
    metas = [dict(img_shape=(129, 257), pad_shape=(129, 257))]
    for level in (-1, 0):
        head = _warmup(predict_level=level).eval()
        with torch.no_grad():
            pred = head.predict(feats, metas, None)
            ref = F.interpolate(head(feats)[level], size=(129, 257), mode='bilinear',
                                align_corners=False)
        torch.testing.assert_close(pred, ref)


@pytest.mark.parametrize('kwargs,match', [
    (dict(predict_level=3), 'predict_level'),
    (dict(channels=64), 'channels must equal in_channels'),
    (dict(in_channels=320, in_index=2), 'in_channels'),
    (dict(input_transform='resize_concat'), 'multiple_select'),
])
def test_bad_configuration_raises_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _warmup(**kwargs)
