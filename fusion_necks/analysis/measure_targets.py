"""Pixel decoders as ``pkg.module:factory`` targets of ``tools/analysis/get_flops.py`` and
``benchmark.py``, which call ``module(*inputs)`` with one random tensor per ``--inputs``.

Both factories return a module taking the backbone maps as separate arguments (finest
first), with the Mask2Former settings of mmseg's configs (256 channels, 6 encoder layers,
8 heads, 4 points, 3 encoder levels, FFN 1024):

    python tools/analysis/get_flops.py \\
        fusion_necks.analysis.measure_targets:point_pixel_decoder \\
        --inputs 1,64,128,128 1,128,64,64 1,256,32,32 1,512,16,16 \\
        --kwargs '{"in_channels": [64, 128, 256, 512]}'

``point_pixel_decoder`` reads the maps as full grids of point tokens (the token counts of
AutoFocusFormer's stages at the same input size); ``grid_pixel_decoder`` is mmdet's
``MSDeformAttnPixelDecoder`` (needs mmdet). ``segmentor_logits`` is a whole mmseg
segmentor from a config, returning the segmentation logits of ``predict`` as a tensor,
so that mmengine's jit-based counter can trace Mask2Former models too (their ``tensor``
mode needs data samples and ``predict`` returns data samples)::

    python tools/analysis/get_flops.py \
        fusion_necks.analysis.measure_targets:segmentor_logits --inputs 1,3,512,512 \
        --kwargs '{"config": "configs/autofocusformer/<config>.py"}'
"""
from typing import Optional, Sequence

from torch import Tensor, nn

from ..layers.point.point_pixel_decoder import PointPixelDecoder


class PixelDecoderOnMaps(nn.Module):
    """``forward(*maps)`` -> ``decoder(list(maps), **call_kwargs)``: the mmdet contract
    (dense mask features and dense multi-scale maps; tensors only, so jit can trace it)."""

    def __init__(self, decoder: nn.Module, **call_kwargs) -> None:
        super().__init__()
        self.decoder = decoder
        self.call_kwargs = call_kwargs

    def forward(self, *maps: Tensor):
        return self.decoder(list(maps), **self.call_kwargs)


def point_pixel_decoder(in_channels: Sequence[int] = (64, 128, 256, 512),
                        **kwargs) -> PixelDecoderOnMaps:
    """The point-based decoder (:class:`PointPixelDecoder`, paper defaults)."""
    return PixelDecoderOnMaps(PointPixelDecoder(list(in_channels), **kwargs).eval(),
                              dense_multi_scale=True)


def grid_pixel_decoder(in_channels: Sequence[int] = (64, 128, 256, 512),
                       feat_channels: int = 256, out_channels: int = 256) -> PixelDecoderOnMaps:
    """mmdet's ``MSDeformAttnPixelDecoder`` with mmseg's Mask2Former settings."""
    from mmdet.models.layers import MSDeformAttnPixelDecoder
    from mmengine.config import ConfigDict
    encoder = ConfigDict(
        num_layers=6,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=feat_channels, num_heads=8, num_levels=3,
                               num_points=4, im2col_step=64, dropout=0.0, batch_first=True,
                               norm_cfg=None, init_cfg=None),
            ffn_cfg=dict(embed_dims=feat_channels, feedforward_channels=1024, num_fcs=2,
                         ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True))),
        init_cfg=None)
    dec = MSDeformAttnPixelDecoder(
        in_channels=list(in_channels), strides=[4, 8, 16, 32], feat_channels=feat_channels,
        out_channels=out_channels, num_outs=3, norm_cfg=dict(type='GN', num_groups=32),
        act_cfg=dict(type='ReLU'), encoder=encoder,
        positional_encoding=dict(num_feats=feat_channels // 2, normalize=True))
    dec.init_weights()
    return PixelDecoderOnMaps(dec.eval())


class SegmentorLogits(nn.Module):
    """``forward(img)`` -> ``B x num_classes x H x W`` logits of an mmseg segmentor, i.e.
    ``predict`` without the final arg-max and the data-sample packing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))] * img.shape[0]
        feats = self.model.extract_feat(img)
        return self.model.decode_head.predict(feats, metas, self.model.test_cfg)


def segmentor_logits(config: str, cfg_options: Optional[dict] = None) -> SegmentorLogits:
    """The model of an mmseg ``config`` (weights initialised offline, eval mode)."""
    from mmengine.model import revert_sync_batchnorm

    from ..compat import apply_config_compat
    from ..utils.config import build_model, load_config
    cfg = load_config(config, cfg_options)
    apply_config_compat(cfg, offline=True)  # measured at random init
    model = build_model(cfg, 'mmseg')
    return SegmentorLogits(revert_sync_batchnorm(model).eval())
