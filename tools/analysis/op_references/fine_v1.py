"""FINE's forward before ``fusion_necks/layers/block_ops.py`` (kept for the op benchmark).

Only the paper's default path with sizes that divide (AATS with average pooling, softmax
attention, nearest ``Up``, residual modulation), as the library ran it: generic
``F.avg_pool2d`` for both samplers and one broadcast ``addcmul`` for Eqs. 8-9, with
PyTorch's own backward. Same parameters and state dict as :class:`FINE`.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

from fusion_necks.layers.fine import FINE


class FINEv1(FINE):

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        b, c, h, w = low.shape
        f = self.up_factor
        if not (self.attention == 'aats' and self.pooling == 'avg' and f > 1
                and self.upsample_mode == 'nearest' and self.modulation == 'residual'
                and h % f == 0 and w % f == 0):
            raise ValueError('FINEv1 reproduces the default path with divisible sizes only')
        k = self.kernel_size
        low_tokens = F.avg_pool2d(low, f, f, ceil_mode=True)
        high_tokens = high if k == 1 else F.avg_pool2d(high, k, k, ceil_mode=True)
        m_hat = self.attn(low_tokens, high_tokens)
        low6 = low.reshape(b, c, h // f, f, w // f, f)
        m6 = m_hat.reshape(b, c, h // f, 1, w // f, 1)
        return torch.addcmul(low6, low6, m6).reshape(b, c, h, w)
