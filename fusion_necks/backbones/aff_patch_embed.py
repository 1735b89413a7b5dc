"""AutoFocusFormer patch embedding: image -> stride-4 tokens with integer positions."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AFFPatchEmbed(nn.Module):
    """Two 3x3 stride-2 convolutions, as in AutoFocusFormer (CVPR 2023, Fig. 2).

    ``Conv3x3/s2 (C_in -> C/2) -> BatchNorm -> GELU -> Conv3x3/s2 (C/2 -> C)``, flattened to
    tokens and followed by a LayerNorm (``patch_norm``). The image is first zero-padded on
    the right/bottom to a multiple of 4 (as the official segmentation code does), so the
    stride-4 canvas is ``ceil(H/4) x ceil(W/4)``.

    Args:
        in_channels: input image channels.
        embed_dim: ``C``, the stage-1 width (must be even).
        patch_norm: LayerNorm on the tokens.

    Shapes:
        ``x: B x C_in x H x W`` -> ``feat: B x (h*w) x C`` (row-major), ``pos: B x (h*w) x 2``
        int64 ``(x, y)`` canvas coordinates, and ``(h, w)``.
    """

    def __init__(self, in_channels: int = 3, embed_dim: int = 64, patch_norm: bool = True) -> None:
        super().__init__()
        if embed_dim % 2:
            raise ValueError(f'embed_dim must be even (the first conv has embed_dim // 2 '
                             f'channels), got {embed_dim}')
        self.conv1 = nn.Conv2d(in_channels, embed_dim // 2, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(embed_dim // 2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(embed_dim // 2, embed_dim, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else nn.Identity()

    @staticmethod
    def grid_positions(h: int, w: int, batch: int, device=None) -> Tensor:
        """``batch x (h*w) x 2`` int64 (x, y) of a full canvas in row-major order."""
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing='ij')
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).unsqueeze(0).expand(batch, -1, -1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tuple[int, int]]:
        pad_h, pad_w = (-x.shape[-2]) % 4, (-x.shape[-1]) % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.conv2(self.act(self.bn(self.conv1(x))))
        b, c, h, w = x.shape
        h, w = int(h), int(w)  # plain ints even under torch.jit.trace (mmengine's FLOP counter)
        feat = self.norm(x.flatten(2).transpose(1, 2))
        return feat, self.grid_positions(h, w, b, x.device), (h, w)
