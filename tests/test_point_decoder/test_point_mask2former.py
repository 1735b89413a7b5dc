"""The point-based Mask2Former head in whole segmentors: loss and predict on the CPU,
attention masks read at the tokens, the configs of configs/autofocusformer and the
quickstart, and the unmodified mmseg head with the point decoder on dense maps."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.decode_heads.point_mask2former_head import (PointMask2FormerHead,
                                                                 sample_at_points)

ROOT = Path(__file__).resolve().parents[2]
CFG_DIR = ROOT / 'configs' / 'autofocusformer'
QUICKSTART = ROOT / 'configs' / 'quickstart' / 'mask2former-point_aff-mini_synth-cityscapes.py'
NARROW_BACKBONE = dict(embed_dims=(16, 32, 32, 48), depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2))


def _narrow(cfg):
    """A small but complete model: narrow backbone, 64-channel head, 3 decoder layers."""
    cfg.model.backbone.update(NARROW_BACKBONE, init_cfg=None)
    head = cfg.model.decode_head
    head.in_channels = list(NARROW_BACKBONE['embed_dims'])
    head.feat_channels = head.out_channels = 64
    head.num_queries = 10
    pd = head.pixel_decoder
    pd.encoder.num_layers = 2
    pd.encoder.layer_cfg.self_attn_cfg.update(embed_dims=64, num_heads=4)
    pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=64, feedforward_channels=128)
    pd.positional_encoding = dict(num_feats=32, normalize=True)
    head.positional_encoding = dict(num_feats=32, normalize=True)
    td = head.transformer_decoder
    td.num_layers = 3
    for k in ('self_attn_cfg', 'cross_attn_cfg'):
        td.layer_cfg[k].update(embed_dims=64, num_heads=4)
    td.layer_cfg.ffn_cfg.update(embed_dims=64, feedforward_channels=128)
    head.train_cfg.num_points = 256
    return cfg


def _samples(b, h, w, num_classes, seed=0):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(b):
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        seg = torch.randint(0, num_classes, (1, h // 16, w // 16), generator=g)
        s.gt_sem_seg = PixelData(data=seg.repeat_interleave(16, 1).repeat_interleave(16, 2))
        out.append(s)
    return out


def test_sample_at_points_is_exact_on_tokens_and_bilinear_between():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 8, 12, generator=g)
    pos = torch.stack([torch.randint(0, 12, (2, 5), generator=g),
                       torch.randint(0, 8, (2, 5), generator=g)], -1)
    got = sample_at_points(maps, pos)
    ref = torch.stack([maps[b][:, pos[b, :, 1], pos[b, :, 0]] for b in range(2)])
    assert torch.equal(got, ref)
    # cell centres of a 2x coarser grid = what mmdet's bilinear resize computes
    ys, xs = torch.meshgrid(torch.arange(4), torch.arange(6), indexing='ij')
    centres = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() * 2 + 0.5
    got = sample_at_points(maps, centres.unsqueeze(0).expand(2, -1, -1))
    ref = F.interpolate(maps, (4, 6), mode='bilinear', align_corners=False).flatten(2)
    torch.testing.assert_close(got, ref)


def test_quickstart_segmentor_loss_and_predict_on_cpu():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _narrow(Config.fromfile(str(QUICKSTART)))
    model = MODELS.build(cfg.model)
    model.init_weights()
    head = model.decode_head
    assert isinstance(head, PointMask2FormerHead)
    assert model.backbone.out_dense is False
    x = torch.randn(2, 3, 64, 96)
    samples = _samples(2, 64, 96, 19)
    losses = model.loss(x, samples)
    assert len([k for k in losses if k.startswith('decode.d')]) == 3 * 3
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.stages[3].blocks[0].attn.q.weight.grad is not None
    assert head.pixel_decoder.layers[0].self_attn.power.grad is not None
    model.eval()
    with torch.no_grad():
        cls, masks = head(model.backbone(x), samples)
        out = model.predict(x, samples)
    assert masks[-1].shape == (2, 10, 16, 24) and cls[-1].shape == (2, 10, 20)
    assert out[0].pred_sem_seg.data.shape == (1, 64, 96)
    assert out[0].seg_logits.data.shape == (19, 64, 96)


def test_attention_masks_are_read_at_the_level_tokens(monkeypatch):
    """The decoder layers get masks equal to the dense mask logits at the tokens."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(_narrow(Config.fromfile(str(QUICKSTART))).model).eval()
    head = model.decode_head
    seen = []
    original = head._forward_head_points

    def spy(decoder_out, mask_feature, target_pos):
        cls, mask, attn = original(decoder_out, mask_feature, target_pos)
        seen.append((mask, target_pos, attn))
        return cls, mask, attn

    monkeypatch.setattr(head, '_forward_head_points', spy)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.backbone(x)
        head(feats, _samples(1, 64, 64, 19))
    assert len(seen) == 4
    sizes = [f.feat.shape[1] for f in feats[:0:-1]]  # res5, res4, res3
    for i, (mask, pos, attn) in enumerate(seen):
        assert attn.shape == (4, 10, sizes[i % 3])
        lookup = mask[0][:, pos[0, :, 1], pos[0, :, 0]]
        assert torch.equal(attn[0], lookup.sigmoid() < 0.5)


def test_unmodified_mmseg_head_runs_with_the_point_decoder_on_dense_maps():
    """``type='Mask2FormerHead'`` + our decoder: the head's num_levels assertion holds
    and the contract (dense multi-scale maps) is honoured."""
    from mmseg.models.decode_heads import Mask2FormerHead
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _narrow(Config.fromfile(str(QUICKSTART)))
    cfg.model.backbone.out_dense = True
    cfg.model.decode_head.type = 'Mask2FormerHead'
    model = MODELS.build(cfg.model)
    assert type(model.decode_head) is Mask2FormerHead
    x = torch.randn(2, 3, 64, 64)
    losses = model.loss(x, _samples(2, 64, 64, 19))
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))


def test_point_head_also_takes_dense_maps():
    """A grid backbone (here AFF rasterised): coarse tokens at cell centres, bilinear masks."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _narrow(Config.fromfile(str(QUICKSTART)))
    cfg.model.backbone.out_dense = True
    model = MODELS.build(cfg.model)
    x = torch.randn(2, 3, 64, 64)
    losses = model.loss(x, _samples(2, 64, 64, 19))
    assert torch.isfinite(sum(v for k, v in losses.items() if 'loss' in k))


def test_point_head_refuses_a_grid_pixel_decoder():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _narrow(Config.fromfile(str(QUICKSTART)))
    pd = cfg.model.decode_head.pixel_decoder
    pd.type = 'mmdet.MSDeformAttnPixelDecoder'
    pd.norm_cfg = dict(type='GN', num_groups=32)
    with pytest.raises(TypeError, match='forward_points'):
        MODELS.build(cfg.model)


EXPECTED = {
    # name: (arch, in_channels, alpha, drop_path, crop, classes, max_iters)
    'mask2former-point_aff-mini_8xb4-45k_cityscapes-512x1024.py':
        ('mini', [32, 128, 256, 384], 8.0, 0.0, (512, 1024), 19, 45000),
    'mask2former-point_aff-tiny_8xb4-45k_cityscapes-512x1024.py':
        ('tiny', [64, 128, 256, 512], 8.0, 0.3, (512, 1024), 19, 45000),
    'mask2former-point_aff-small_8xb4-45k_cityscapes-512x1024.py':
        ('small', [96, 192, 384, 768], 8.0, 0.3, (512, 1024), 19, 45000),
    'mask2former-point_aff-mini_8xb4-80k_ade20k-512x512.py':
        ('mini', [32, 128, 256, 384], 4.0, 0.0, (512, 512), 150, 80000),
    'mask2former-point_aff-tiny_8xb4-80k_ade20k-512x512.py':
        ('tiny', [64, 128, 256, 512], 4.0, 0.3, (512, 512), 150, 80000),
    'mask2former-point_aff-small_8xb4-80k_ade20k-512x512.py':
        ('small', [96, 192, 384, 768], 4.0, 0.3, (512, 512), 150, 80000),
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_configs_follow_the_design_notes_recipe(name):
    arch, chans, alpha, dpr, crop, classes, iters = EXPECTED[name]
    cfg = Config.fromfile(str(CFG_DIR / name))
    assert cfg.custom_imports == dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
    bb, head = cfg.model.backbone, cfg.model.decode_head
    assert bb.type == 'AutoFocusFormer' and 'depth' not in bb  # ResNet keys deleted
    assert (bb.arch, bb.alpha, bb.drop_path_rate, bb.out_dense) == (arch, alpha, dpr, False)
    assert bb.init_cfg.checkpoint.endswith(f'aff_{arch}.pth')
    assert head.type == 'PointMask2FormerHead' and head.in_channels == chans
    assert head.num_classes == classes and head.num_queries == 100
    assert head.pixel_decoder.type == 'PointMSDeformAttnPixelDecoder'
    assert head.pixel_decoder.encoder.layer_cfg.self_attn_cfg.num_levels == 3
    assert head.transformer_decoder.num_layers == 9
    assert cfg.crop_size == crop and tuple(cfg.model.data_preprocessor.size) == crop
    assert cfg.train_dataloader.batch_size * 8 == 32
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.weight_decay) == ('AdamW',
                                                                                 2e-4, 0.05)
    assert opt.clip_grad.max_norm == 0.01 and opt.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
    assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[0].end == iters


def test_quickstart_shares_the_semantic_fpn_quickstart_recipe():
    ours = Config.fromfile(str(QUICKSTART))
    sem = Config.fromfile(str(ROOT / 'configs' / 'quickstart' /
                              'sem-fpn_r18_fpn_synth-cityscapes-b2.py'))
    assert ours.train_pipeline == sem.train_pipeline and ours.test_pipeline == sem.test_pipeline
    for key in ('train_dataloader', 'val_dataloader'):
        assert ours[key].batch_size == sem[key].batch_size
        assert ours[key].dataset.data_root == sem[key].dataset.data_root
    assert ours.train_cfg.max_iters == sem.train_cfg.max_iters
    assert [s.type for s in ours.param_scheduler] == [s.type for s in sem.param_scheduler]
    assert [(s.begin, s.end) for s in ours.param_scheduler] == \
        [(s.begin, s.end) for s in sem.param_scheduler]
    assert ours.val_evaluator == sem.val_evaluator
    assert ours.model.backbone.init_cfg is None and ours.model.backbone.arch == 'mini'
    assert ours.train_dataloader.batch_size == 2
    base = Config.fromfile(str(ROOT / 'configs' / 'quickstart' /
                               'sem-fpn_r18_fpn_synth-cityscapes.py'))
    base.train_dataloader.batch_size = 2
    base, sem = base.to_dict(), sem.to_dict()
    # the baseline changes only the batch and the schedule length (same shape: 10% warm-up)
    changed = {k for k in base.keys() | sem.keys() if base.get(k) != sem.get(k)}
    assert changed <= {'max_iters', 'train_cfg', 'param_scheduler', 'default_hooks'}
    assert sem['param_scheduler'][0]['end'] * 10 == sem['max_iters'] == ours.max_iters
    assert sem['default_hooks']['checkpoint']['interval'] == sem['max_iters']


def test_whole_segmentor_is_batch_invariant_in_eval():
    """Sample 0 of a batch of 2 gives the same seg logits as that sample alone (default
    ``rules='exact'``, the fast inference path of the point decoder included). The
    official reading is not batch-invariant in general (its clustering key takes the
    maximum ratio over the batch), so it is not asserted here."""
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _narrow(Config.fromfile(str(QUICKSTART)))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    x = torch.randn(2, 3, 96, 160, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        both = model.predict(x, _samples(2, 96, 160, 19))
        alone = model.predict(x[:1], _samples(1, 96, 160, 19))
    torch.testing.assert_close(both[0].seg_logits.data, alone[0].seg_logits.data,
                               rtol=0, atol=1e-5)
    assert torch.equal(both[0].pred_sem_seg.data, alone[0].pred_sem_seg.data)
