"""``PointFeatures``: the point-token type shared by backbones and decoders.

One stage of an AutoFocusFormer outputs irregular tokens; the point Mask2Former pixel
decoder consumes them. Both depend on this module (plain PyTorch), not on each other.
"""
from typing import NamedTuple, Tuple

from torch import Tensor

from .points_to_dense import points_to_dense


class PointFeatures(NamedTuple):
    """One stage output of AutoFocusFormer.

    Attributes:
        feat: ``B x N x C`` token features (after the stage's output LayerNorm).
        pos: ``B x N x 2`` int64 ``(x, y)`` positions on the stride-4 canvas, in the
            stage's clustering order (``feat[:, i]`` sits at ``pos[:, i]``).
        canvas: ``(h, w)`` of the stride-4 canvas (the same for every stage).
        stride: nominal stride of the stage in input pixels (4, 8, 16, 32).
    """
    feat: Tensor
    pos: Tensor
    canvas: Tuple[int, int]
    stride: int

    def to_dense(self, k: int = 4, power: float = 2.0) -> Tensor:
        """Rasterise onto the dense ``B x C x ceil(h/f) x ceil(w/f)`` grid of ``stride``."""
        return points_to_dense(self.feat, self.pos, self.canvas, self.stride, 4, k, power)


__all__ = ['PointFeatures']
