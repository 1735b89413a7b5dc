"""Expanded relative-position features of point tokens.

AutoFocusFormer, CVPR 2023, Sec. 4.2: the relative position ``(dx, dy)`` between two
tokens is expanded with its length and direction,

    paper order:    [dx, dy, d, dx/d, dy/d]      ("distance, cosine and sine")
    official order: [dx, dy, d, dy/d, dx/d]      (CLS/SEG ``build_pe_lookup``: "sin, cos")

with ``d = sqrt(dx^2 + dy^2)`` and the two ratios set to 0 at ``d = 0``. Distance is
rotation invariant and the angle terms are scale invariant. The features feed learned
affine maps (the attention bias ``Linear(5 -> heads)`` and the merge weight net), so the
two orders are the same model up to a permutation of those layers' input columns;
``tools/model_converters/aff2fusion.py`` applies that permutation when it converts an
official checkpoint to the paper order. ``expanded=False`` returns only ``[dx, dy]``
(the "remove expanded relative position" ablation, paper Table 5).

The official code reads these vectors from a precomputed table indexed by integer
offsets in ``[-R, R]^2`` (R = 55 at 224^2 for classification, 511 and clamped for
segmentation). Computing them directly from the offsets is identical inside that range,
has no size limit and no clamp.
"""
import torch
from torch import Tensor

from ..utils.validation import check_choice

REL_POS_ORDERS = ('paper', 'official')


def rel_pos_dim(expanded: bool = True) -> int:
    """Number of features returned by :func:`expanded_rel_pos`."""
    return 5 if expanded else 2


def expanded_rel_pos(delta: Tensor, expanded: bool = True, order: str = 'paper') -> Tensor:
    """Relative-position features.

    Args:
        delta: ``... x 2`` offsets ``(dx, dy)`` in canvas units (int or float).
        expanded: if False, return ``delta`` as float (2 features).
        order: ``'paper'`` ``[dx, dy, d, dx/d, dy/d]`` or ``'official'``
            ``[dx, dy, d, dy/d, dx/d]``.

    Returns:
        ``... x 5`` (or ``... x 2``) float features, differentiable w.r.t. a float ``delta``.
    """
    check_choice('order', order, REL_POS_ORDERS)
    if delta.shape[-1] != 2:
        raise ValueError(f'delta must end with 2 (dx, dy), got {tuple(delta.shape)}')
    delta = delta if delta.is_floating_point() else delta.float()
    if not expanded:
        return delta
    dx, dy = delta.unbind(-1)
    d2 = dx * dx + dy * dy
    nonzero = d2 > 0
    d = torch.where(nonzero, d2, torch.ones_like(d2)).sqrt()
    cos = torch.where(nonzero, dx / d, torch.zeros_like(dx))
    sin = torch.where(nonzero, dy / d, torch.zeros_like(dy))
    d = torch.where(nonzero, d, torch.zeros_like(d))
    if order == 'paper':
        return torch.stack([dx, dy, d, cos, sin], -1)
    return torch.stack([dx, dy, d, sin, cos], -1)
