"""Non-overlapping token sampling ``Down(x, kernel=K)`` of FINE's Alignment-Aware Token
Sampling (AATS, Eq. 4 and Appendix B of Lee, Lee, Kang, "Context-Guided Semantic
Alignment for Feature Fusion Networks", arXiv 2606.14005).

Plain PyTorch (no OpenMMLab imports).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.validation import check_choice, check_int
from .block_ops import block_avg_pool

TOKEN_SAMPLING_MODES = ('avg', 'max', 'dwconv')


def sampled_size(size: int, kernel_size: int) -> int:
    """Tokens along one axis after non-overlapping sampling: ``ceil(size / kernel_size)``."""
    return -(-size // kernel_size)


class TokenSampler(nn.Module):
    """``Down(x, kernel=K)``: one token per non-overlapping ``K x K`` window.

    AATS (Eq. 4) samples the high-level map with kernel ``k`` and the low-level map with
    kernel ``r * k`` so that, for adjacent pyramid levels, every low token and every high
    token summarise the same image region.

    Remainder: the token grid is ``ceil(H / K) x ceil(W / K)``. Token ``(i, j)`` summarises
    pixels ``[iK, (i+1)K) x [jK, (j+1)K)`` clipped to the map, i.e. the grid is anchored at
    the top-left pixel exactly like the feature pyramid itself (pixel ``p`` of a stride-``s``
    level covers image pixels ``[ps, (p+1)s)``). With a stride-``s`` low level of height
    ``H`` and its stride-``2s`` neighbour of height ``ceil(H / 2)`` (any ResNet-style
    backbone), ``ceil(H / rk) == ceil(ceil(H / 2) / k)`` for ``r = 2``, so both grids have
    the same size and token ``(i, j)`` of either covers the same image region, for every
    input size. Partial windows on the bottom/right border:

    - ``'avg'`` (default, Sec. 4.2): mean over the pixels of the window that exist;
    - ``'max'`` (Table 6): max over those pixels;
    - ``'dwconv'`` (Table 6, "DWConv"): a learnable depthwise ``K x K`` convolution with
      stride ``K`` and no bias (``C * K^2`` parameters; ``K = 1`` is the identity and has
      none, which reproduces the paper's +6.14K for C=256 with kernels 2, 4 and 2). The map
      is zero-padded at the bottom/right to a multiple of ``K``, so a partial window sees
      zeros. The kernel starts as average pooling (``1 / K^2``) and is a parameter of this
      module rather than an ``nn.Conv2d``, so an FPN's Xavier ``init_cfg`` (which targets
      ``Conv2d`` layers) does not overwrite that start.

    Args:
        channels (int): channels ``C`` of the map (used by ``'dwconv'`` only).
        kernel_size (int): window side ``K >= 1``. ``K = 1`` returns the input unchanged.
        mode (str): ``'avg'``, ``'max'`` or ``'dwconv'``.

    Shapes:
        ``B x C x H x W -> B x C x ceil(H / K) x ceil(W / K)``.
    """

    def __init__(self, channels: int, kernel_size: int, mode: str = 'avg') -> None:
        super().__init__()
        check_choice('mode', mode, TOKEN_SAMPLING_MODES)
        check_int('kernel_size', kernel_size)
        check_int('channels', channels)
        self.channels = channels
        self.kernel_size = kernel_size
        self.mode = mode
        if mode == 'dwconv' and kernel_size > 1:
            self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        else:
            self.register_parameter('weight', None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            nn.init.constant_(self.weight, 1.0 / self.kernel_size ** 2)

    def output_size(self, height: int, width: int):
        return sampled_size(height, self.kernel_size), sampled_size(width, self.kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        k = self.kernel_size
        if k == 1:
            return x
        if self.mode == 'avg':
            if x.shape[-2] % k == 0 and x.shape[-1] % k == 0:
                # the same means (summation order aside), with a one-pass backward (avg_pool2d_backward makes
                # several full-size passes on CPUs; see block_ops)
                return block_avg_pool(x, k)[0]
            # ceil_mode with padding=0: the divisor of a partial window is the number of
            # its pixels inside the map, i.e. a true mean over existing pixels.
            return F.avg_pool2d(x, k, k, ceil_mode=True)
        if self.mode == 'max':
            return F.max_pool2d(x, k, k, ceil_mode=True)
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % k, (-w) % k
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return F.conv2d(x, self.weight, stride=k, groups=self.channels)

    def extra_repr(self) -> str:
        return f'channels={self.channels}, kernel_size={self.kernel_size}, mode={self.mode!r}'
