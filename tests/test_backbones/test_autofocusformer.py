"""AutoFocusFormer backbone: parameter counts, token counts, invariances, gradients."""
import pytest
import torch

from fusion_necks.backbones import aff_downsample
from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet
from fusion_necks.ops.point_features import PointFeatures


pytestmark = pytest.mark.usefixtures('single_thread')

# a narrow 4-stage model: token bookkeeping does not depend on the widths
NARROW = dict(embed_dims=(16, 16, 16, 16), depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2),
              mlp_ratio=1.0, drop_path_rate=0.0)


@pytest.mark.parametrize('arch,paper_m', [('mini', 6.75), ('tiny', 27.02), ('small', 42.61),
                                          ('base', 75.34), ('tiny_1_5th', 27.02)])
def test_parameter_counts_with_classification_head(arch, paper_m):
    """Paper Table 1 (Mini/Tiny/Small) and the official README (Base 75.34M)."""
    model = AutoFocusFormerNet(arch, num_classes=1000)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 1e6 / paper_m - 1) < 0.005, count


def test_backbone_only_parameter_count_mini():
    # design notes §1: backbone + 4 output LayerNorms, no head: 6.37M for Mini
    count = sum(p.numel() for p in AutoFocusFormerNet('mini').parameters())
    assert abs(count / 1e6 - 6.37) < 0.01


@pytest.mark.parametrize('ds_rate,counts', [(0.25, [16384, 4096, 1024, 256]),
                                            (0.2, [16384, 3276, 655, 131])])
def test_token_counts_at_512(ds_rate, counts):
    model = AutoFocusFormerNet('mini', ds_rate=ds_rate, **NARROW).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 512, 512))
    assert [o.feat.shape[1] for o in outs] == counts
    for i, o in enumerate(outs):
        assert o.pos.shape == (1, counts[i], 2) and o.pos.dtype == torch.int64
        assert o.canvas == (128, 128) and o.stride == 4 * 2 ** i
        # positions are distinct points of the stride-4 canvas, each stage a subset of the last
        lin = o.pos[0, :, 1] * 128 + o.pos[0, :, 0]
        assert lin.unique().numel() == counts[i] and lin.min() >= 0 and lin.max() < 128 * 128
        if i:
            prev = outs[i - 1].pos[0, :, 1] * 128 + outs[i - 1].pos[0, :, 0]
            assert torch.isin(lin, prev).all()
        # the reserved coarse grid of the previous downsampling survives
        if i:
            step = 2 ** (i + 1)
            assert ((o.pos[0] % step == 0).all(-1)).sum() == (128 // step) ** 2


def test_one_image_alone_equals_inside_a_batch():
    torch.manual_seed(0)
    model = AutoFocusFormerNet('mini', embed_dims=(16, 32, 32, 32), depths=(1, 1, 2, 1),
                            num_heads=(1, 2, 2, 2)).eval()
    x = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        batched = model(x)
        for b in range(3):
            alone = model(x[b:b + 1])
            for ob, oa in zip(batched, alone):
                assert torch.equal(ob.pos[b:b + 1], oa.pos)
                torch.testing.assert_close(ob.feat[b:b + 1], oa.feat, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('hw', [(100, 132), (37, 53), (32, 32)])
def test_sizes_not_multiple_of_32(hw):
    model = AutoFocusFormerNet('mini', **NARROW).eval()
    h, w = -(-hw[0] // 4), -(-hw[1] // 4)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *hw))
        dense = [o.to_dense() for o in outs]
    n = h * w
    for i, o in enumerate(outs):
        assert o.feat.shape[1] == n and torch.isfinite(o.feat).all()
        assert (o.pos[..., 0] < w).all() and (o.pos[..., 1] < h).all()
        f = 2 ** i
        assert dense[i].shape == (2, 16, -(-h // f), -(-w // f))
        n = int(n * 0.25)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = AutoFocusFormerNet('small', embed_dims=(16, 32, 32, 48), depths=(1, 2, 1, 1),
                            num_heads=(2, 2, 4, 4), drop_path_rate=0.0)  # layer scale on
    outs = model(torch.randn(2, 3, 64, 80))
    sum((o.feat * torch.randn_like(o.feat)).sum() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    assert model.stages[0].blocks[0].gamma1 is not None


def test_importance_layers_learn_only_through_merge_weights(monkeypatch):
    model = AutoFocusFormerNet('mini', **NARROW)
    x = torch.randn(1, 3, 64, 64)
    sum(o.feat.square().sum() for o in model(x)).backward()
    imp = [s.downsample.importance.weight for s in model.stages[:3]]
    assert all(p.grad.abs().sum() > 0 for p in imp)
    model.zero_grad(set_to_none=True)
    orig = aff_downsample.weighted_neighbour_sum
    monkeypatch.setattr(aff_downsample, 'weighted_neighbour_sum',
                        lambda w, f, i, me: orig(w.detach(), f, i, me))
    sum(o.feat.square().sum() for o in model(x)).backward()
    assert all(p.grad is None for p in imp)


def test_classifier_global_last_stage_at_224():
    """Paper Sec. 5.1: at 224 the last stage has 49 tokens and attends globally."""
    model = AutoFocusFormerNet('mini', nbhd_size=(48, 48, 48, 49), num_classes=10,
                            embed_dims=(16, 16, 16, 32), depths=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        stages = model.forward_stages(torch.randn(1, 3, 224, 224))
        logits = model(torch.randn(2, 3, 224, 224))
    assert [s.feat.shape[1] for s, _ in stages] == [3136, 784, 196, 49]
    assert [s.stride for s, _ in stages] == [4, 8, 16, 32]
    assert [d is None for _, d in stages] == [False, False, False, True]
    nb = model.stages[3].build_neighbourhoods(stages[3][0].pos, (56, 56))
    assert nb.order is None and nb.idx.shape == (1, 49, 49) and nb.mask is None
    nb = model.stages[2].build_neighbourhoods(stages[2][0].pos, (56, 56))
    assert nb.idx.shape == (1, 196, 48)  # 6 nearest clusters of 8
    assert logits.shape == (2, 10)


@pytest.mark.parametrize('kwargs', [dict(grid_prior=False), dict(expanded_rel_pos=False),
                                    dict(blank_token=False), dict(reserve_tokens=False),
                                    dict(alpha=8.0), dict(rel_pos_order='official')])
def test_ablation_switches(kwargs):
    model = AutoFocusFormerNet('mini', **NARROW, **kwargs)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.feat.shape[1] for o in outs] == [256, 64, 16, 4]
    attn = model.stages[0].blocks[0].attn
    ds = model.stages[0].downsample
    if kwargs.get('expanded_rel_pos') is False:
        assert attn.rel_pos_bias.in_features == 2 and ds.weight_net.fc.in_features == 2
    if kwargs.get('blank_token') is False:
        assert attn.blank_k is None and 'blank_k' not in dict(attn.named_parameters())
    if kwargs.get('reserve_tokens') is False:
        assert not ds.reserve
    if kwargs.get('grid_prior') is False:
        assert not ds.grid_prior


def test_stage1_neighbourhood_cache_is_keyed_by_canvas():
    model = AutoFocusFormerNet('mini', **NARROW).eval()
    with torch.no_grad():
        a1 = model(torch.ones(1, 3, 64, 64))
        model(torch.ones(2, 3, 96, 64))  # another size, larger batch
        a2 = model(torch.ones(1, 3, 64, 64))
    assert len(model.stages[0]._grid_cache) == 2
    for x, y in zip(a1, a2):
        assert torch.equal(x.pos, y.pos) and torch.equal(x.feat, y.feat)


def test_dense_outputs_match_point_outputs():
    model = AutoFocusFormerNet('mini', **NARROW, out_dense=True).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        dense = model(x)
        model.out_dense = False
        points = model(x)
    assert [d.shape[-2:] for d in dense] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert isinstance(points[0], PointFeatures)
    p = points[0]  # stage 1 is the full grid: exact scatter
    lin = p.pos[0, :, 1] * 24 + p.pos[0, :, 0]
    torch.testing.assert_close(dense[0][0].flatten(1)[:, lin], p.feat[0].T)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='arch'):
        AutoFocusFormerNet('huge')
    with pytest.raises(ValueError, match='divisible'):
        AutoFocusFormerNet('mini', num_heads=(3, 4, 8, 16))
    with pytest.raises(ValueError, match='nbhd_size'):
        AutoFocusFormerNet('mini', nbhd_size=(48, 48))
    with pytest.raises(ValueError, match='rel_pos_order'):
        AutoFocusFormerNet('mini', rel_pos_order='swin')
    with pytest.raises(ValueError, match='nbhd_size'):
        AutoFocusFormerNet('mini', nbhd_size=4)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    ref = AutoFocusFormerNet('mini', **NARROW)
    cp = AutoFocusFormerNet('mini', **NARROW, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 48, 64)
    grads = []
    for model in (ref, cp):
        model.eval()  # deterministic BN; blocks still checkpoint when grads are needed
        model.stages.train()
        sum(o.feat.square().sum() for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, atol=1e-5, rtol=1e-4, msg=n)


def test_low_precision_forward_backward():
    """bf16 weights (model.to(bfloat16)) run end to end; positions stay int64."""
    torch.manual_seed(0)
    model = AutoFocusFormerNet('mini', **NARROW).to(torch.bfloat16)
    outs = model(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
    assert all(o.feat.dtype == torch.bfloat16 and o.pos.dtype == torch.int64 for o in outs)
    sum(o.feat.float().sum() for o in outs).backward()
    assert all(torch.isfinite(p.grad.float()).all() for p in model.parameters())
