"""``PointMask2FormerHead``: mmseg's Mask2Former head whose transformer decoder attends to
point tokens (AutoFocusFormer, CVPR 2023, Sec. 4.1 and Table 3 "Mask2Former*").

mmseg's ``Mask2FormerHead`` consumes dense multi-scale maps: it encodes them with
``SinePositionalEncoding`` over the map and resizes the previous layer's mask logits to
each map bilinearly to build the masked-attention masks. The point version
(official ``mask2former_transformer_decoder.py``, apple/ml-autofocusformer-segmentation) instead

* cross-attends to the pixel decoder's point tokens of each level (res5, res4, res3),
  with the sine encoding of the tokens' canvas coordinates
  (:func:`~.point_position_encoding.point_sine_encoding`, the head's own
  ``positional_encoding`` settings) plus the level embedding;
* builds the attention mask of a level by reading the stride-4 mask logits at the
  tokens' positions: the tokens sit on stride-4 canvas points, so this is an exact
  lookup (the official code interpolates with 4 neighbours and power 6, which at a
  coinciding point is the same value). Non-integer positions (dense inputs read as
  cell centres) are sampled bilinearly.

Mask logits stay dense on the stride-4 canvas (the pixel decoder's mask features cover
the full stride-4 token set), so the losses, the matching and ``predict`` are mmseg's.
Everything else (queries, losses, ``loss``/``predict``, config keys) is unchanged: only
``forward`` differs. Registered as ``'PointMask2FormerHead'`` in mmseg's ``MODELS``.
Its ``pixel_decoder`` must provide ``forward_points`` (``PointMSDeformAttnPixelDecoder``).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmseg.models.decode_heads import Mask2FormerHead
from torch import Tensor

from ..utils.validation import check_choice
from ..layers.point.point_position_encoding import NORMALIZE_BY, point_sine_encoding


def sample_at_points(maps: Tensor, pos: Tensor) -> Tensor:
    """Read ``B x Q x h x w`` maps at ``B x N x 2`` (x, y) canvas positions -> ``B x Q x N``.

    Integer positions are looked up exactly; float positions are sampled bilinearly
    (pixel centres at integer coordinates, border values outside).
    """
    b, q, h, w = maps.shape
    if not pos.is_floating_point():
        lin = (pos[..., 1].clamp(0, h - 1) * w + pos[..., 0].clamp(0, w - 1))  # B x N
        return maps.flatten(2).gather(2, lin.unsqueeze(1).expand(-1, q, -1))
    grid = torch.stack([pos[..., 0] / max(w - 1, 1), pos[..., 1] / max(h - 1, 1)], -1) * 2 - 1
    out = F.grid_sample(maps, grid.to(maps.dtype).unsqueeze(1), mode='bilinear',
                        padding_mode='border', align_corners=True)
    return out.squeeze(2)


class PointMask2FormerHead(Mask2FormerHead):
    """Mask2Former head on point tokens (mmseg; registry name ``'PointMask2FormerHead'``).

    Takes exactly the arguments of mmseg's ``Mask2FormerHead``, plus:

    Args:
        pos_normalize_by: how token coordinates are normalised in the decoder's sine
            encoding: ``'canvas'`` (default; on a full grid identical to mmseg's head) or
            ``'tensor_max'`` (the official code), see :mod:`.point_position_encoding`.

    Shapes: ``x`` is the backbone output, a tuple of AutoFocusFormer ``PointFeatures``
    (``out_dense=False``) or of dense maps. ``forward`` returns, like mmseg's, the
    per-layer class logits ``B x Q x (num_classes + 1)`` and dense mask logits
    ``B x Q x h x w`` on the stride-4 canvas.
    """

    def __init__(self, *args, pos_normalize_by: str = 'canvas', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice('pos_normalize_by', pos_normalize_by, NORMALIZE_BY)
        if not callable(getattr(self.pixel_decoder, 'forward_points', None)):
            raise TypeError(f'PointMask2FormerHead needs a pixel decoder with forward_points '
                            f"(type='PointMSDeformAttnPixelDecoder'), got "
                            f'{type(self.pixel_decoder).__name__}')
        self.pos_normalize_by = pos_normalize_by

    def _encode_positions(self, pos: Tensor, canvas: Tuple[int, int]) -> Tensor:
        pe = self.decoder_positional_encoding
        return point_sine_encoding(pos, canvas, pe.num_feats, pe.temperature, pe.normalize,
                                   pe.scale, pe.eps, pe.offset, self.pos_normalize_by)

    def _forward_head_points(self, decoder_out: Tensor, mask_feature: Tensor,
                             target_pos: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """mmdet's ``_forward_head`` with the attention mask read at ``target_pos``.

        Returns ``cls_pred B x Q x (K+1)``, ``mask_pred B x Q x h x w`` and ``attn_mask
        (B*heads) x Q x N`` (True = not attended).
        """
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        cls_pred = self.cls_embed(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        attn_mask = sample_at_points(mask_pred, target_pos)  # B x Q x N
        attn_mask = attn_mask.unsqueeze(1).repeat((1, self.num_heads, 1, 1)).flatten(0, 1)
        attn_mask = (attn_mask.sigmoid() < 0.5).detach()
        return cls_pred, mask_pred, attn_mask

    def forward(self, x, batch_data_samples) -> Tuple[List[Tensor], List[Tensor]]:
        mask_features, multi_scale = self.pixel_decoder.forward_points(x)
        batch_size = mask_features.shape[0]
        canvas = tuple(mask_features.shape[-2:])
        decoder_inputs, decoder_pos, target_pos = [], [], []
        for i in range(self.num_transformer_feat_level):
            level = multi_scale[i]
            tokens = level.feat  # B x N x C
            proj = self.decoder_input_projs[i]
            if isinstance(proj, Conv2d):  # 1x1 conv on tokens = linear
                tokens = F.linear(tokens, proj.weight.flatten(1), proj.bias)
            tokens = tokens + self.level_embed.weight[i].view(1, 1, -1)
            decoder_inputs.append(tokens)
            decoder_pos.append(self._encode_positions(level.pos, canvas).to(tokens.dtype))
            target_pos.append(level.pos)
        query_feat = self.query_feat.weight.unsqueeze(0).repeat((batch_size, 1, 1))
        query_embed = self.query_embed.weight.unsqueeze(0).repeat((batch_size, 1, 1))

        cls_pred_list, mask_pred_list = [], []
        cls_pred, mask_pred, attn_mask = self._forward_head_points(query_feat, mask_features,
                                                                   target_pos[0])
        cls_pred_list.append(cls_pred)
        mask_pred_list.append(mask_pred)
        for i in range(self.num_transformer_decoder_layers):
            level_idx = i % self.num_transformer_feat_level
            # if a mask is all True (all background), then set it all False
            mask_sum = (attn_mask.sum(-1) != attn_mask.shape[-1]).unsqueeze(-1)
            attn_mask = attn_mask & mask_sum
            layer = self.transformer_decoder.layers[i]
            query_feat = layer(
                query=query_feat,
                key=decoder_inputs[level_idx],
                value=decoder_inputs[level_idx],
                query_pos=query_embed,
                key_pos=decoder_pos[level_idx],
                cross_attn_mask=attn_mask,
                query_key_padding_mask=None,
                key_padding_mask=None)
            cls_pred, mask_pred, attn_mask = self._forward_head_points(
                query_feat, mask_features,
                target_pos[(i + 1) % self.num_transformer_feat_level])
            cls_pred_list.append(cls_pred)
            mask_pred_list.append(mask_pred)
        return cls_pred_list, mask_pred_list
