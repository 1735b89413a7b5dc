"""``FINEFPN`` for MMDetection: mmdet's own ``FPN`` with FINE in its top-down path.

FINE: Lee, Lee, Kang, "Context-Guided Semantic Alignment for Feature Fusion Networks",
arXiv 2606.14005 (Eq. 3). Registered into ``mmdet.registry.MODELS`` as ``'FINEFPN'`` by
``fusion_necks.registry``.
"""
import torch.nn.functional as F
from mmdet.models.necks import FPN
from torch import Tensor

from .fine_top_down import FINETopDownMixin


class FINEFPN(FINETopDownMixin, FPN):
    """mmdet ``FPN`` + FINE (registry name ``'FINEFPN'`` in mmdet).

    Takes exactly mmdet ``FPN``'s arguments with mmdet's semantics (``end_level``
    inclusive, ``add_extra_convs=True`` meaning ``'on_input'``, ``upsample_cfg`` passed to
    ``F.interpolate``) plus ``fine_kernel_sizes`` and ``fine_cfg``; see
    :class:`~fusion_necks.necks.fine_top_down.FINETopDownMixin` for those, for where FINE
    sits and for the default (FINE at the low-stride-16 step with ``k = 1`` and the
    low-stride-8 step with ``k = 2``; plain addition at the stride-4 step of two-stage
    detectors). Any mmdet FPN config switches by changing ``type='FPN'`` to
    ``type='FINEFPN'``: every FPN that mmdet builds also builds with FINE's default keys
    (heads and kernels are picked from ``out_channels`` and the number of top-down steps,
    see the mixin).

    Shapes: ``inputs`` is a tuple of ``B x in_channels[i] x H_i x W_i``; the outputs are
    those of mmdet's ``FPN`` (``num_outs`` maps of ``out_channels``).
    """

    def _upsample_like(self, x: Tensor, ref: Tensor) -> Tensor:
        # the same call as mmdet FPN.forward's top-down line
        if 'scale_factor' in self.upsample_cfg:
            return F.interpolate(x, **self.upsample_cfg)
        return F.interpolate(x, size=ref.shape[2:], **self.upsample_cfg)
