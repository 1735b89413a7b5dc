"""The one conv / norm / activation builder of the plain layers (timm style).

``fusion_necks.layers``, ``.ops``, ``.backbones`` (with ``.layers.point``) must run where
only PyTorch is installed, so they cannot use mmcv's ``ConvModule`` /
``build_norm_layer`` (the mm-facing heads in ``fusion_necks.decode_heads`` do). Every
plain layer that builds a configurable norm or activation goes through this module.

A norm or activation is given as a *layer spec*, any of

* ``None``: no layer;
* a callable that builds it: a class (``nn.BatchNorm2d``, ``nn.ReLU``) or a factory
  (``functools.partial(nn.GroupNorm, 32)``), called as ``norm_layer(num_features)`` /
  ``act_layer()``;
* the mmcv-style config dict that OpenMMLab configs pass (``dict(type='BN')``,
  ``dict(type='GN', num_groups=32)``, ``dict(type='LeakyReLU', negative_slope=0.1)``;
  ``type`` may also be a class, as in mmcv);
* a name (``'relu'``, ``'BN'``), the ``type`` of such a dict without arguments.

Names and dict types are looked up case-insensitively in :data:`NORM_LAYERS` /
:data:`ACT_LAYERS` (the mmcv names).

* :func:`get_norm_layer` / :func:`get_act_layer`: spec -> factory (or None).
* :func:`create_norm_layer` / :func:`create_act_layer`: spec -> module (or None).
* :class:`ConvNormAct`: ``conv -> norm -> act``, with the child names of mmcv's
  ``ConvModule`` (``conv``, ``bn``/``gn``/``ln``/``in``, ``activate``) so that the state
  dicts of the two are interchangeable; ``conv_layer`` puts another convolution in place
  of the ``nn.Conv2d`` (the point decoder's ``PointConv``).
"""
import inspect
from functools import partial
from typing import Any, Callable, Dict, Optional, Tuple, Union

from torch import Tensor, nn

from ..utils.validation import check_choice
from .sync_batch_norm import SyncBatchNorm

#: A norm or activation: None, a name, an mmcv-style config dict, or a callable.
LayerSpec = Union[None, str, Dict[str, Any], Callable[..., nn.Module]]

NORM_LAYERS: Dict[str, Tuple[str, type]] = {
    # type -> (child name, class); names follow mmcv's `infer_abbr`
    'BN': ('bn', nn.BatchNorm2d),
    'BN2d': ('bn', nn.BatchNorm2d),
    'SyncBN': ('bn', SyncBatchNorm),  # BN without CUDA
    'GN': ('gn', nn.GroupNorm),
    'LN': ('ln', nn.LayerNorm),
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


def _lookup(table: Dict[str, Any], layer_type: str, name: str) -> Any:
    """``table[layer_type]``, case-insensitively (``'relu'`` and mmcv's ``'ReLU'``)."""
    key = {k.lower(): k for k in table}.get(layer_type.lower()) if isinstance(
        layer_type, str) else None
    if key is None:  # no match even ignoring case: the error names the canonical types
        check_choice(f'{name} type', layer_type, table)
    return table[key]


def _split_spec(spec: Union[str, dict], name: str) -> Tuple[Any, Dict[str, Any]]:
    """``(type, keyword arguments)`` of a name or an mmcv-style config dict."""
    if isinstance(spec, str):
        return spec, {}
    if 'type' not in spec:
        raise TypeError(f'{name} must be a dict with a "type" key, got {spec!r}')
    kwargs = dict(spec)
    return kwargs.pop('type'), kwargs


def norm_abbr(norm_cls: Callable[..., nn.Module]) -> str:
    """Child name of a norm layer, mmcv's ``infer_abbr``: ``'bn'``, ``'gn'``, ``'ln'``,
    ``'in'`` by base class (a ``_abbr_`` attribute wins), ``'norm'`` otherwise (also
    for factories that are not classes)."""
    if isinstance(norm_cls, partial):
        norm_cls = norm_cls.func
    if not inspect.isclass(norm_cls):
        return 'norm'
    if hasattr(norm_cls, '_abbr_'):
        return norm_cls._abbr_
    for base, abbr in ((nn.modules.instancenorm._InstanceNorm, 'in'),  # before BN: IN is one
                       (nn.modules.batchnorm._BatchNorm, 'bn'), (nn.GroupNorm, 'gn'),
                       (nn.LayerNorm, 'ln')):
        if issubclass(norm_cls, base):
            return abbr
    return 'norm'


def _resolve_norm(norm_layer: LayerSpec,
                  name: str) -> Optional[Tuple[str, Callable[[int], nn.Module]]]:
    """``(child name, factory num_features -> module)`` for a norm spec, None for None."""
    if norm_layer is None:
        return None
    if not isinstance(norm_layer, (str, dict)):
        if not callable(norm_layer):
            raise TypeError(f'{name} must be None, a name, a config dict or a callable, '
                            f'got {norm_layer!r}')
        return norm_abbr(norm_layer), norm_layer
    layer_type, kwargs = _split_spec(norm_layer, name)
    requires_grad = kwargs.pop('requires_grad', True)
    if inspect.isclass(layer_type):  # dict(type=nn.BatchNorm2d, ...), as mmcv allows
        abbr, cls = norm_abbr(layer_type), layer_type
    else:
        abbr, cls = _lookup(NORM_LAYERS, layer_type, name)
    is_gn = issubclass(cls, nn.GroupNorm)
    if is_gn and 'num_groups' not in kwargs:
        raise KeyError(f'{name} of type GN needs num_groups, '
                       'e.g. dict(type="GN", num_groups=32)')

    def build(num_features: int) -> nn.Module:
        if is_gn:
            if num_features % kwargs['num_groups']:
                raise ValueError(f'GN num_groups={kwargs["num_groups"]} must divide the '
                                 f'number of channels ({num_features})')
            layer = cls(num_channels=num_features, **kwargs)
        else:
            layer = cls(num_features, **kwargs)
        for param in layer.parameters():  # mmcv's requires_grad=False freezes the affine
            param.requires_grad = requires_grad
        return layer

    return abbr, build


def get_norm_layer(norm_layer: LayerSpec,
                   name: str = 'norm_layer') -> Optional[Callable[[int], nn.Module]]:
    """The factory ``num_features -> nn.Module`` of a norm spec (None for no norm).

    Args:
        norm_layer: a layer spec (see the module docstring). ``GN`` dicts need
            ``num_groups`` (dividing ``num_features``); ``requires_grad=False`` freezes
            the affine parameters, as in mmcv; the other keys go to the layer.
        name: the argument's name in error messages (e.g. ``'norm_cfg'``).
    """
    resolved = _resolve_norm(norm_layer, name)
    return None if resolved is None else resolved[1]


def create_norm_layer(norm_layer: LayerSpec, num_features: int,
                      name: str = 'norm_layer') -> Tuple[Optional[str], Optional[nn.Module]]:
    """``(child name, module)`` of a norm spec for ``num_features`` channels.

    The child name is mmcv's abbreviation (:func:`norm_abbr`: ``'bn'``, ``'gn'``, ...),
    so modules named with it have ``ConvModule``'s state-dict keys; ``(None, None)`` for
    no norm. ``name``: the argument's name in error messages.
    """
    resolved = _resolve_norm(norm_layer, name)
    if resolved is None:
        return None, None
    abbr, build = resolved
    return abbr, build(num_features)


def get_act_layer(act_layer: LayerSpec,
                  name: str = 'act_layer') -> Optional[Callable[..., nn.Module]]:
    """The factory of an activation spec (a class or a ``partial``; None for none).

    Args:
        act_layer: a layer spec (see the module docstring); a dict's keys other than
            ``type`` (``negative_slope``, ``inplace``, ...) go to the layer.
        name: the argument's name in error messages (e.g. ``'act_cfg'``).
    """
    if act_layer is None:
        return None
    if not isinstance(act_layer, (str, dict)):
        if not callable(act_layer):
            raise TypeError(f'{name} must be None, a name, a config dict or a callable, '
                            f'got {act_layer!r}')
        return act_layer
    layer_type, kwargs = _split_spec(act_layer, name)
    cls = layer_type if inspect.isclass(layer_type) else _lookup(ACT_LAYERS, layer_type, name)
    return partial(cls, **kwargs) if kwargs else cls


def _takes_inplace(factory: Callable[..., nn.Module]) -> bool:
    try:
        return 'inplace' in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to inspect
        return False


def create_act_layer(act_layer: LayerSpec, inplace: Optional[bool] = None,
                     name: str = 'act_layer') -> Optional[nn.Module]:
    """The activation module of a spec (None for no activation).

    Args:
        act_layer: a layer spec (see :func:`get_act_layer`).
        inplace: default ``inplace`` for activations that take one (``ReLU``,
            ``LeakyReLU``, ...; ignored for ``GELU``, ``Sigmoid``, ...); an ``inplace``
            key in a config dict wins. None: the layer's own default (not in place).
        name: the argument's name in error messages.
    """
    factory = get_act_layer(act_layer, name)
    if factory is None:
        return None
    given = isinstance(factory, partial) and 'inplace' in factory.keywords
    if inplace is not None and not given and _takes_inplace(factory):
        return factory(inplace=inplace)
    return factory()


class ConvNormAct(nn.Module):
    """``conv -> norm -> activation``, each optional but the conv (timm's ``ConvNormAct``).

    The children are named as in mmcv's ``ConvModule`` (``conv``, the norm under its
    abbreviation ``bn``/``gn``/``ln``/``in``, ``activate``), so a ``ConvModule`` state
    dict loads into this module and back.

    Args:
        in_channels: input channels C_in.
        out_channels: output channels C_out.
        kernel_size: square kernel size k of the ``nn.Conv2d``.
        stride: its stride s.
        padding: its padding p (default ``kernel_size // 2``).
        bias: ``'auto'`` (a conv bias only when there is no norm, as ``ConvModule``) or a
            bool.
        norm_layer: norm after the conv, a layer spec (:mod:`.conv_norm_act`: None, a
            name, an mmcv-style dict such as ``dict(type='GN', num_groups=32)``, or a
            callable ``num_features -> module`` such as ``nn.BatchNorm2d``).
        act_layer: activation after the norm, a layer spec (``dict(type='LeakyReLU',
            negative_slope=0.1)``, ``nn.ReLU``, ``'gelu'``, None).
        conv_layer: a factory ``conv_layer(in_channels, out_channels, bias=...)`` for a
            convolution other than ``nn.Conv2d``, e.g. ``partial(PointConv,
            num_neighbours=9)`` over point tokens; its neighbourhood is its own, so
            ``kernel_size``, ``stride`` and ``padding`` must stay at their defaults.
            Extra ``forward`` arguments go to it.
        norm_name: child name of the norm (default: mmcv's abbreviation, see
            :func:`norm_abbr`); set it to keep the keys of existing checkpoints.
        norm_cfg / act_cfg: ``ConvModule``'s spelling of ``norm_layer`` / ``act_layer``
            (so a ``ConvModule(...)`` call ports by changing the class, and error
            messages name the argument that was given); give one spelling or the other.

    Shapes: ``B x C_in x H x W -> B x C_out x H' x W'`` with
    ``H' = floor((H + 2p - k) / s) + 1``; with ``conv_layer`` whatever it maps, e.g.
    ``B x N x C_in -> B x N x C_out`` for ``PointConv`` (a ``LayerNorm`` then normalises
    the channels, the last dimension).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: Optional[int] = None,
                 bias: Union[bool, str] = 'auto',
                 norm_layer: LayerSpec = None,
                 act_layer: LayerSpec = None,
                 *,
                 conv_layer: Optional[Callable[..., nn.Module]] = None,
                 norm_name: Optional[str] = None,
                 norm_cfg: Optional[dict] = None,
                 act_cfg: Optional[dict] = None) -> None:
        super().__init__()
        norm_layer, norm_arg = self._one_spelling(norm_layer, norm_cfg, 'norm')
        act_layer, act_arg = self._one_spelling(act_layer, act_cfg, 'act')
        if bias == 'auto':
            bias = norm_layer is None
        if conv_layer is None:
            padding = kernel_size // 2 if padding is None else padding
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                  bias=bias)
        else:
            if (kernel_size, stride, padding) != (1, 1, None):
                raise ValueError('ConvNormAct: kernel_size, stride and padding are those of '
                                 'nn.Conv2d; with conv_layer set them in conv_layer, got '
                                 f'kernel_size={kernel_size}, stride={stride}, '
                                 f'padding={padding}')
            self.conv = conv_layer(in_channels, out_channels, bias=bias)
        abbr, norm = create_norm_layer(norm_layer, out_channels, norm_arg)
        self.norm_name: Optional[str] = None
        if norm is not None:
            self.norm_name = norm_name or abbr
            self.add_module(self.norm_name, norm)
        self.activate = create_act_layer(act_layer, name=act_arg)

    @staticmethod
    def _one_spelling(layer: LayerSpec, cfg: Optional[dict], kind: str) -> Tuple[LayerSpec, str]:
        """``(spec, argument name)`` from ``<kind>_layer`` or its alias ``<kind>_cfg``."""
        if cfg is None:
            return layer, f'{kind}_layer'
        if layer is not None:
            raise ValueError(f'ConvNormAct: give {kind}_layer or {kind}_cfg, not both')
        return cfg, f'{kind}_cfg'

    # No `norm` property (mmcv's ConvModule has one): the norm is the child `norm_name`,
    # and a property would shadow a child that is itself named `norm`.
    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        x = self.conv(x, *args, **kwargs)
        if self.norm_name is not None:
            x = getattr(self, self.norm_name)(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


__all__ = ['ACT_LAYERS', 'NORM_LAYERS', 'ConvNormAct', 'LayerSpec', 'create_act_layer',
           'create_norm_layer', 'get_act_layer', 'get_norm_layer', 'norm_abbr']
