"""``FINEFPN`` for MMSegmentation: mmseg's own ``FPN`` with FINE in its top-down path.

FINE: Lee, Lee, Kang, "Context-Guided Semantic Alignment for Feature Fusion Networks",
arXiv 2606.14005 (Eq. 3, Appendix D: Semantic FPN). Registered into
``mmseg.registry.MODELS`` as ``'FINEFPN'`` by ``fusion_necks.registry``.
"""
from mmseg.models.necks import FPN
from mmseg.models.utils import resize
from torch import Tensor

from .fine_top_down import FINETopDownMixin


class FINEFPN(FINETopDownMixin, FPN):
    """mmseg ``FPN`` + FINE (registry name ``'FINEFPN'`` in mmseg).

    Takes exactly mmseg ``FPN``'s arguments with mmseg's semantics (``end_level``
    exclusive, ``add_extra_convs=True`` meaning ``'on_output'`` unless
    ``extra_convs_on_inputs``, ``upsample_cfg`` passed to mmseg's ``resize``) plus
    ``fine_kernel_sizes`` and ``fine_cfg``; see
    :class:`~fusion_necks.necks.fine_top_down.FINETopDownMixin` for those, for where FINE
    sits and for the default (FINE at the low-stride-16 step with ``k = 1`` and the
    low-stride-8 step with ``k = 2``; plain addition at the stride-4 step). Semantic FPN
    switches by changing ``type='FPN'`` to ``type='FINEFPN'``: every FPN it builds also
    builds with FINE's default keys (heads and kernels are picked from ``out_channels``
    and the number of top-down steps, see the mixin).

    Shapes: ``inputs`` is a tuple of ``B x in_channels[i] x H_i x W_i``; the outputs are
    those of mmseg's ``FPN`` (``num_outs`` maps of ``out_channels``).
    """

    def _upsample_like(self, x: Tensor, ref: Tensor) -> Tensor:
        # the same call as mmseg FPN.forward's top-down line
        if 'scale_factor' in self.upsample_cfg:
            return resize(x, **self.upsample_cfg)
        return resize(x, size=ref.shape[2:], **self.upsample_cfg)
