"""Conv -> norm -> activation in plain PyTorch, configured like mmcv's ``ConvModule``.

``fusion_necks.layers`` must run where only PyTorch is installed, so it cannot use
``mmcv.cnn.ConvModule``. :class:`ConvNormAct` takes the same ``norm_cfg`` /
``act_cfg`` dicts (``dict(type='BN')``, ``dict(type='GN', num_groups=32)``,
``dict(type='LeakyReLU', negative_slope=0.1)``, ...) and names its children the way
``ConvModule`` does (``conv``, ``bn``/``gn``/``ln``/``in``, ``activate``), so state
dicts of the two are interchangeable.
"""
from typing import Dict, Optional, Tuple, Union

from torch import Tensor, nn

from .sync_batch_norm import SyncBatchNorm

NORM_LAYERS: Dict[str, Tuple[str, type]] = {
    # type -> (child name, class); names follow mmcv's `infer_abbr`
    'BN': ('bn', nn.BatchNorm2d),
    'BN2d': ('bn', nn.BatchNorm2d),
    'SyncBN': ('bn', SyncBatchNorm),  # BN without CUDA
    'GN': ('gn', nn.GroupNorm),
    'IN': ('in', nn.InstanceNorm2d),
    'IN2d': ('in', nn.InstanceNorm2d),
}

ACT_LAYERS: Dict[str, type] = {
    'ReLU': nn.ReLU,
    'LeakyReLU': nn.LeakyReLU,
    'ReLU6': nn.ReLU6,
    'SiLU': nn.SiLU,
    'Swish': nn.SiLU,
    'GELU': nn.GELU,
    'ELU': nn.ELU,
    'PReLU': nn.PReLU,
    'Sigmoid': nn.Sigmoid,
    'Tanh': nn.Tanh,
    'HSwish': nn.Hardswish,
    'HSigmoid': nn.Hardsigmoid,
    'Mish': nn.Mish,
}


def build_norm_layer(cfg: dict, num_features: int) -> Tuple[str, nn.Module]:
    """``(child_name, module)`` for ``cfg`` (keys: ``type``, ``requires_grad``, layer kwargs).

    ``GN`` needs ``num_groups`` dividing ``num_features``; the others take the usual
    ``eps``/``momentum``/``affine`` keyword arguments.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'norm_cfg must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    norm_type = cfg.pop('type')
    requires_grad = cfg.pop('requires_grad', True)
    if norm_type not in NORM_LAYERS:
        raise KeyError(f'norm_cfg type must be one of {sorted(NORM_LAYERS)}, got {norm_type!r}')
    name, cls = NORM_LAYERS[norm_type]
    if cls is nn.GroupNorm:
        if 'num_groups' not in cfg:
            raise KeyError('norm_cfg of type GN needs num_groups, '
                           'e.g. dict(type="GN", num_groups=32)')
        if num_features % cfg['num_groups']:
            raise ValueError(f'GN num_groups={cfg["num_groups"]} must divide the number of '
                             f'channels ({num_features})')
        layer = cls(num_channels=num_features, **cfg)
    else:
        layer = cls(num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return name, layer


def build_activation_layer(cfg: dict) -> nn.Module:
    """The activation for ``cfg`` (``type`` plus the layer's keyword arguments)."""
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'act_cfg must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    act_type = cfg.pop('type')
    if act_type not in ACT_LAYERS:
        raise KeyError(f'act_cfg type must be one of {sorted(ACT_LAYERS)}, got {act_type!r}')
    return ACT_LAYERS[act_type](**cfg)


class ConvNormAct(nn.Module):
    """``Conv2d`` followed by an optional norm and an optional activation.

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: square kernel size k; padding defaults to ``k // 2``.
        stride: convolution stride.
        padding: explicit padding (default ``kernel_size // 2``).
        bias: ``'auto'`` (bias only when there is no norm, as ``ConvModule``) or a bool.
        norm_cfg: norm layer config, or None for no norm.
        act_cfg: activation config, or None for no activation.

    Shapes: ``B x C_in x H x W -> B x C_out x H' x W'`` with
    ``H' = floor((H + 2p - k) / s) + 1``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: Optional[int] = None,
                 bias: Union[bool, str] = 'auto',
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        if bias == 'auto':
            bias = norm_cfg is None
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.norm_name: Optional[str] = None
        if norm_cfg is not None:
            self.norm_name, norm = build_norm_layer(norm_cfg, out_channels)
            self.add_module(self.norm_name, norm)
        self.activate = build_activation_layer(act_cfg) if act_cfg is not None else None

    @property
    def norm(self) -> Optional[nn.Module]:
        return getattr(self, self.norm_name) if self.norm_name else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x
