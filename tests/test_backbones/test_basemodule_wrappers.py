"""The two mm-facing wrappers of plain modules are real mmengine ``BaseModule`` s:
``init_cfg`` / ``init_weights`` are BaseModule's (Pretrained last), on top of the plain
module's default initialisation, with the plain module's state-dict keys."""
import copy

import pytest
import torch
from mmengine.model import BaseModule

import fusion_necks.registry  # noqa: F401  (registers our modules)
from fusion_necks.backbones import AutoFocusFormerNet
from fusion_necks.backbones.autofocusformer_backbone import AutoFocusFormer
from fusion_necks.layers.point import PointPixelDecoder
from fusion_necks.decode_heads.point_msdeformattn_pixel_decoder import \
    PointMSDeformAttnPixelDecoder

NARROW = dict(arch='mini', embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1),
              num_heads=(2, 2, 2, 2))
DECODER = dict(in_channels=[8, 16, 24, 32], feat_channels=32, out_channels=16,
               encoder=dict(num_layers=1, layer_cfg=dict(
                   self_attn_cfg=dict(embed_dims=32, num_heads=4),
                   ffn_cfg=dict(feedforward_channels=64, act_cfg=dict(type='ReLU',
                                                                      inplace=True)))))

pytestmark = pytest.mark.usefixtures('single_thread')


def _same_tree(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_backbone_is_a_base_module_with_the_plain_keys_and_values():
    assert issubclass(AutoFocusFormer, BaseModule)
    mro = AutoFocusFormer.__mro__
    assert mro.index(AutoFocusFormerNet) < mro.index(BaseModule)  # plain __init__ runs once
    torch.manual_seed(0)
    plain = AutoFocusFormerNet(**NARROW, out_dense=True)
    torch.manual_seed(0)
    wrapped = AutoFocusFormer(**NARROW)
    _same_tree(plain, wrapped)
    assert not wrapped.is_init and wrapped.init_cfg is None
    wrapped.init_weights()   # no init_cfg: the official init of construction stays
    assert wrapped.is_init
    _same_tree(plain, wrapped)


def test_backbone_pretrained_applies_last_and_frozen_stages_stay_frozen(tmp_path):
    src = AutoFocusFormer(**NARROW)
    path = tmp_path / 'ours.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    # Pretrained listed first still wins over a Constant init of every Linear
    cfg = [dict(type='Pretrained', checkpoint=str(path)),
           dict(type='Constant', layer='Linear', val=0.5)]
    model = AutoFocusFormer(**NARROW, frozen_stages=1, init_cfg=copy.deepcopy(cfg))
    model.init_weights()
    _same_tree(src, model)
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())


def test_pixel_decoder_is_a_base_module_with_the_plain_keys():
    assert issubclass(PointMSDeformAttnPixelDecoder, BaseModule)
    mro = PointMSDeformAttnPixelDecoder.__mro__
    assert mro.index(PointPixelDecoder) < mro.index(BaseModule)
    torch.manual_seed(0)
    dec = PointMSDeformAttnPixelDecoder(**DECODER, norm_cfg=dict(type='LN'))
    torch.manual_seed(0)
    plain = PointPixelDecoder(in_channels=[8, 16, 24, 32], feat_channels=32, out_channels=16,
                              num_layers=1, num_heads=4, ffn_channels=64)
    _same_tree(plain, dec)
    assert dec.layers[0].ffn[1].inplace            # the encoder FFN's act_cfg
    assert not dec.output_convs[0].activate.inplace


def test_pixel_decoder_default_init_then_init_cfg():
    dec = PointMSDeformAttnPixelDecoder(**DECODER, norm_cfg=dict(type='LN'),
                                        init_cfg=dict(type='Constant', layer='Embedding',
                                                      val=0.25))
    for p in dec.parameters():
        torch.nn.init.constant_(p, 3.0)   # e.g. a parent's generic init
    dec.init_weights()
    assert dec.is_init
    assert torch.all(dec.level_encoding.weight == 0.25)      # init_cfg after the default
    assert torch.all(dec.mask_feature.bias == 0)              # the default init ran again
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    dec.init_weights()   # a second call only warns (BaseModule) and changes nothing
    for k, v in dec.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_pixel_decoder_bad_act_cfg_names_its_key():
    with pytest.raises(ValueError, match=r'^act_cfg type must be one of'):
        PointMSDeformAttnPixelDecoder(**DECODER, norm_cfg=dict(type='LN'),
                                      act_cfg=dict(type='Swishy'))
    bad = copy.deepcopy(DECODER)
    bad['encoder']['layer_cfg']['ffn_cfg']['act_cfg'] = dict(type='Swishy')
    with pytest.raises(ValueError, match=r'^encoder.layer_cfg.ffn_cfg.act_cfg type must be'):
        PointMSDeformAttnPixelDecoder(**bad, norm_cfg=dict(type='LN'))
