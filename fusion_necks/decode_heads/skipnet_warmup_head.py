"""Phase 1 of BAFF-SkipNet's two-phase schedule: SkipNet's score layers, deeply supervised.

BAFF article (Huang et al., Acta Automatica Sinica 47(5):1137-1148, 2021): "first, warming
up the MobileNet_v2 encoder to produce meaningful intermediate features at 1/32, 1/16 and
1/8 resolution; then, fine-tuning the decoder and BAFF modules end-to-end". This head is
the first phase; :class:`~fusion_necks.decode_heads.SkipNetHead` is the second.
"""
from typing import List, Tuple

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor, nn

from ..utils.validation import check_int


class SkipNetWarmupHead(BaseDecodeHead):
    """One linear score layer per level, each with its own loss (no fusion).

    The score layers have **the names and shapes of** ``SkipNetHead(fusion_space='score')``:
    ``score_convs.i`` (``Conv2d(in_channels[i], num_classes, 1)``, levels ``0 .. N-2``,
    fine to coarse) and the inherited ``conv_seg`` (the coarsest level, so ``channels``
    must equal ``in_channels[-1]``). A phase-1 checkpoint therefore gives a phase-2
    SkipNet / BAFF-SkipNet (``load_from``, mmengine's non-strict load by name) the encoder
    **and all N score layers**; only the transposed convs (bilinear init) and the BAFF
    modules start fresh.

    ``forward`` returns the ``N`` score maps, each at its own stride (fine to coarse).
    Training: ``loss_decode`` is applied to every level after mmseg's bilinear resize to
    the label size, the losses are summed by the runner; the keys are suffixed with the
    level (``loss_ce_lvl0`` for the finest, ``acc_seg_lvl0``, ...). This is the deep
    supervision of our phase 1: each level must classify on its own, so the 1/8, 1/16 and
    1/32 features all become meaningful. Prediction (validation during phase 1) uses the
    level ``predict_level`` (default ``-1``, the coarsest, 1/32).

    Args:
        predict_level (int): index into the levels of the map used by ``predict``.
            Default: -1 (coarsest).
        **kwargs: :class:`~mmseg.models.decode_heads.decode_head.BaseDecodeHead`
            arguments; ``in_channels``/``in_index`` are sequences of equal length (>= 2),
            ``input_transform`` is ``'multiple_select'`` (the default here, and the only
            accepted value), ``channels == in_channels[-1]``.

    Shapes:
        inputs: ``N`` maps ``B x in_channels[i] x H_i x W_i`` ->
        ``N`` maps ``B x num_classes x H_i x W_i``.
    """

    def __init__(self, predict_level: int = -1, **kwargs) -> None:
        from .skipnet_head import check_score_levels
        kwargs.setdefault('input_transform', 'multiple_select')
        check_score_levels(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        num_levels = len(self.in_channels)
        # an index into the num_levels levels, negative from the coarsest end
        check_int('predict_level', predict_level, -num_levels, num_levels - 1,
                  prefix='SkipNetWarmupHead: ')
        self.predict_level = predict_level
        self.score_convs = nn.ModuleList(
            nn.Conv2d(c, self.out_channels, 1) for c in self.in_channels[:-1])

    def forward(self, inputs: Tuple[Tensor]) -> List[Tensor]:
        """Backbone levels -> one score map per level (fine to coarse)."""
        feats = self._transform_inputs(inputs)
        if self.dropout is not None:
            feats = [self.dropout(x) for x in feats]
        return ([conv(x) for conv, x in zip(self.score_convs, feats[:-1])]
                + [self.conv_seg(feats[-1])])

    def loss_by_feat(self, seg_logits: List[Tensor], batch_data_samples) -> dict:
        losses = {}
        for level, logits in enumerate(seg_logits):
            for key, value in super().loss_by_feat(logits, batch_data_samples).items():
                losses[f'{key}_lvl{level}'] = value
        return losses

    def predict_by_feat(self, seg_logits: List[Tensor], batch_img_metas: List[dict]) -> Tensor:
        return super().predict_by_feat(seg_logits[self.predict_level], batch_img_metas)
