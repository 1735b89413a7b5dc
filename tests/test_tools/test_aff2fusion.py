"""tools/model_converters/aff2fusion.py: official AutoFocusFormer names -> ours."""
import importlib.util
import os.path as osp
import pickle

import pytest
import torch

from fusion_necks.backbones.aff_official_weights import (convert_official_aff,
                                                        random_official_aff_state_dict)
from fusion_necks.backbones.autofocusformer import AFF_ARCH_SETTINGS, AutoFocusFormerNet
from fusion_necks.ops.rel_pos_features import expanded_rel_pos


pytestmark = pytest.mark.usefixtures('single_thread')

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def official_state_dict(arch, num_classes=0, seg=False, seed=0):
    """Names and shapes of apple/ml-autofocusformer (``seg=False``: classifier with ``norm``
    and ``head``) or of the segmentation backbone (``seg=True``: ``norm0..3``, a
    ``backbone.`` prefix and a head tensor), filled with random values."""
    state = random_official_aff_state_dict(arch, num_classes, seg, seed)
    if seg:
        state['sem_seg_head.predictor.class_embed.weight'] = torch.randn(151, 256)
    return state


def test_classifier_checkpoint_loads_strict_and_matches_official_functions():
    official = official_state_dict('mini', num_classes=1000)
    converted, unused = convert_official_aff(official)
    assert not unused
    model = AutoFocusFormerNet('mini', num_classes=1000)
    model.load_state_dict(converted, strict=True)
    attn = model.stages[2].blocks[3].attn
    # kv: official [k_h | v_h] per head == ours [k | v] split per head
    x = torch.randn(5, 256)
    kv_off = (x @ official['layers.2.blocks.3.attn.kv.weight'].T
              + official['layers.2.blocks.3.attn.kv.bias']).view(5, 8, 2, 32)
    kv_ours = attn.kv(x).view(5, 2, 8, 32)
    torch.testing.assert_close(kv_ours[:, 0], kv_off[:, :, 0])
    torch.testing.assert_close(kv_ours[:, 1], kv_off[:, :, 1])
    # position bias: the official layer on official-order features == ours on paper order
    delta = torch.tensor([[3, -4], [0, 0], [-2, 7], [5, 1]])
    w = official['layers.2.blocks.3.attn.pos_embed.weight']
    b = official['layers.2.blocks.3.attn.pos_embed.bias']
    ref = expanded_rel_pos(delta, order='official') @ w.T + b
    torch.testing.assert_close(attn.rel_pos_bias(expanded_rel_pos(delta, order='paper')), ref)
    wn = model.stages[1].downsample.weight_net.fc
    w0 = official['layers.1.downsample.weight_net.0.weight']
    b0 = official['layers.1.downsample.weight_net.0.bias']
    ref = expanded_rel_pos(delta, order='official') @ w0.T + b0
    torch.testing.assert_close(wn(expanded_rel_pos(delta)), ref)
    # plain renames keep values
    assert torch.equal(model.stages[0].downsample.importance.weight,
                       official['layers.0.prob_net.weight'])
    assert torch.equal(model.patch_embed.conv1.weight, official['patch_embed.proj1.weight'])
    assert torch.equal(model.head.weight, official['head.weight'])


def test_segmentation_checkpoint_with_prefix_and_layer_scale():
    official = official_state_dict('small', seg=True)
    converted, unused = convert_official_aff(official, rel_pos_order='official')
    assert unused == ['sem_seg_head.predictor.class_embed.weight']
    model = AutoFocusFormerNet('small', rel_pos_order='official')
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.out_norms['3'].weight, official['backbone.norm3.weight'])
    assert torch.equal(model.stages[1].blocks[0].gamma2,
                       official['backbone.layers.1.blocks.0.gamma2'])
    # 'official' order: the position layers are copied as they are
    assert torch.equal(model.stages[0].blocks[0].attn.rel_pos_bias.weight,
                       official['backbone.layers.0.blocks.0.attn.pos_embed.weight'])


def test_command_line_tool_reads_pth_and_d2_pkl(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'aff2fusion', osp.join(ROOT, 'tools', 'model_converters', 'aff2fusion.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src = tmp_path / 'aff_mini.pth'
    torch.save({'model': official_state_dict('mini', num_classes=1000), 'epoch': 300}, src)
    dst = tmp_path / 'out' / 'mini.pth'
    tool.main([str(src), str(dst)])
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['rel_pos_order'] == 'paper'
    AutoFocusFormerNet('mini', num_classes=1000).load_state_dict(ckpt['state_dict'], strict=True)
    # Detectron2 .pkl with numpy arrays (what the segmentation repo trains from)
    seg = {k: v.numpy() for k, v in official_state_dict('mini', seg=True).items()}
    pkl = tmp_path / 'aff_mini_seg.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'model': seg, '__author__': 'd2'}, f)
    tool.main([str(pkl), str(tmp_path / 'seg.pth')])
    state = torch.load(tmp_path / 'seg.pth', weights_only=True)['state_dict']
    AutoFocusFormerNet('mini').load_state_dict(state, strict=True)



class _Payload:
    """A pickle that runs code when loaded (what a weights-only load must refuse)."""

    def __reduce__(self):
        return (open, (_Payload.marker, 'w'))


def test_command_line_tool_refuses_pickled_code_unless_trusted(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'aff2fusion', osp.join(ROOT, 'tools', 'model_converters', 'aff2fusion.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    _Payload.marker = str(tmp_path / 'ran')
    seg = {k: v.numpy() for k, v in official_state_dict('mini', seg=True).items()}
    pkl = tmp_path / 'evil.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'model': seg, 'x': _Payload()}, f)
    with pytest.raises(SystemExit, match='--trust-checkpoint'):
        tool.main([str(pkl), str(tmp_path / 'a.pth')])
    pth = tmp_path / 'official.pth'  # an official .pth pickles its (yacs) config
    torch.save({'model': official_state_dict('mini', num_classes=1000), 'config': _Payload()},
               pth)
    with pytest.raises(SystemExit, match='--trust-checkpoint'):
        tool.main([str(pth), str(tmp_path / 'b.pth')])
    assert not (tmp_path / 'ran').exists() and not (tmp_path / 'b.pth').exists()
    tool.main([str(pth), str(tmp_path / 'b.pth'), '--trust-checkpoint'])  # the user's choice
    assert (tmp_path / 'b.pth').is_file() and (tmp_path / 'ran').exists()
    with pytest.raises(SystemExit, match='does not exist'):
        tool.main([str(tmp_path / 'none.pth'), str(tmp_path / 'c.pth')])


def test_official_checkpoint_loads_directly_through_the_load_hook():
    """``load_state_dict`` of an official file works without running the tool."""
    official = official_state_dict('mini', num_classes=1000, seed=3)
    model = AutoFocusFormerNet('mini', num_classes=1000)
    model.load_state_dict({'model': official, 'epoch': 299}, strict=True)
    converted, _ = convert_official_aff(official)
    for k, v in model.state_dict().items():
        assert torch.equal(v, converted[k]), k
    # inside a bigger module (prefix 'backbone.'), and a segmentation backbone file
    wrapper = torch.nn.Module()
    wrapper.backbone = AutoFocusFormerNet('mini')
    seg = official_state_dict('mini', seg=True, seed=4)
    seg.pop('sem_seg_head.predictor.class_embed.weight')
    wrapper.load_state_dict(seg, strict=True)
    assert torch.equal(wrapper.backbone.out_norms['1'].bias, seg['backbone.norm1.bias'])
    # our own names are left alone
    AutoFocusFormerNet('mini').load_state_dict(wrapper.backbone.state_dict(), strict=True)
