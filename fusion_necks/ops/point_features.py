"""``PointFeatures``: the one point-token type, from a backbone stage to the decoder.

Each AutoFocusFormer stage takes and returns irregular tokens of this type, the
backbone outputs them, and the point Mask2Former pixel decoder consumes them (it
also wraps dense maps in it, with ``grid`` set). Backbones and decoders depend on
this module (plain PyTorch), not on each other.

Stride rule (the only one): a level of stride ``s`` (input pixels) has its tokens at
integer multiples of ``spacing = s // canvas_stride`` on the canvas, the grid of the
finest level (stride ``canvas_stride``, 4 for AutoFocusFormer); AutoFocusFormer
stage ``i`` (0-based) has stride :func:`stage_stride` ``(i) = 4 * 2^i``.
"""
from typing import NamedTuple, Optional, Tuple

from torch import Tensor

from .points_to_dense import points_to_dense

#: stride of the canvas (the stage-1 grid of AutoFocusFormer) in input pixels
CANVAS_STRIDE = 4


def stage_stride(i: int, canvas_stride: int = CANVAS_STRIDE) -> int:
    """Nominal stride of pyramid level / AutoFocusFormer stage ``i`` (0-based): 4, 8, 16, 32."""
    return canvas_stride * 2 ** i


class PointFeatures(NamedTuple):
    """Tokens of one pyramid level at integer (or cell-centre) canvas positions.

    Attributes:
        feat: ``B x N x C`` token features.
        pos: ``B x N x 2`` ``(x, y)`` positions on the canvas (int64 for the backbone's
            tokens; float cell centres where a coarse dense map is wrapped), ``feat[:, i]``
            sits at ``pos[:, i]``.
        canvas: ``(h, w)`` of the canvas (the same for every level of one input).
        stride: nominal stride of the level in input pixels (4, 8, 16, 32).
        canvas_stride: stride of the canvas in input pixels (default 4).
        grid: ``(h_l, w_l)`` when the tokens are a dense map in row-major order (then
            :meth:`to_dense` is a reshape); None for irregular tokens.
    """
    feat: Tensor
    pos: Tensor
    canvas: Tuple[int, int]
    stride: int
    canvas_stride: int = CANVAS_STRIDE
    grid: Optional[Tuple[int, int]] = None

    @property
    def spacing(self) -> int:
        """``stride // canvas_stride``: the level's token spacing in canvas cells."""
        return self.stride // self.canvas_stride

    def to_dense(self, k: int = 4, power: float = 2.0) -> Tensor:
        """``B x C x ceil(h/f) x ceil(w/f)`` at ``stride`` (``f = spacing``): a reshape
        for dense tokens, inverse-distance rasterisation of the ``k`` nearest tokens
        (:func:`~fusion_necks.ops.points_to_dense.points_to_dense`) otherwise."""
        if self.grid is not None:
            b, _, c = self.feat.shape
            return self.feat.transpose(1, 2).reshape(b, c, *self.grid)
        return points_to_dense(self.feat, self.pos, self.canvas, self.stride,
                               self.canvas_stride, k, power)


__all__ = ['CANVAS_STRIDE', 'PointFeatures', 'stage_stride']
