"""FINE's lean path before ``block_ops.pool_and_modulate`` (kept for the op benchmark).

The paper's default path with sizes that divide, as the library ran it from the
W-contiguous block layout until the pooling and the modulation shared their backward:
:func:`~fusion_necks.layers.block_ops.block_avg_pool` and
:func:`~fusion_necks.layers.block_ops.block_residual_modulate` as two separate autograd
functions, whose two gradients of ``F_low`` (two full-size tensors) autograd adds. Same
parameters and state dict as :class:`FINE`.
"""
from torch import Tensor

from fusion_necks.layers.block_ops import block_avg_pool, block_residual_modulate
from fusion_necks.layers.fine import FINE


class FINEv2(FINE):

    def forward(self, low: Tensor, high: Tensor) -> Tensor:
        h, w = low.shape[-2:]
        if not self._lean_path(h, w):
            raise ValueError('FINEv2 reproduces the default path with divisible sizes only')
        f = self.up_factor
        low_tokens, low = block_avg_pool(low, f)
        m_hat = self.attn(low_tokens, self.high_sampler(high))
        return block_residual_modulate(low, m_hat, f)
