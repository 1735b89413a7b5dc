"""The one place that puts fusion-necks modules into the OpenMMLab registries.

Every public module is registered into **both** ``mmdet.registry.MODELS`` and
``mmseg.registry.MODELS`` (where the module makes sense for that framework), under
names that do not collide with upstream entries. Importing this module registers
(``custom_imports = dict(imports=['fusion_necks.registry'])`` in a config); nothing else
in the package does, so ``fusion_necks.ops``/``.layers``/``.backbones`` import without
OpenMMLab. Configs that inherit
``mmdet::``/``mmseg::`` bases carry ``_scope_='mmdet'``/``'mmseg'`` on their model
dict, so registering straight into those two registries means our ``type=`` names
need no scope prefix.

The modules themselves are plain PyTorch (``fusion_necks.ops``, ``.layers``,
``.backbones``) or thin subclasses of framework classes (``.necks``,
``.decode_heads``). Entries are ``'module.path:ClassName'``
strings imported lazily here, so a user who has only mmdet (or only mmseg, or only
torch) can still import this module: the framework that is missing is skipped.

To add a module: append one line to the framework's table below, in the section
of your method. A name that already exists upstream raises at registration time.
"""
import importlib
import importlib.util
from typing import Dict, List, Sequence, Tuple

# (registry name, 'import.path:ClassName')
MMDET_MODULES: List[Tuple[str, str]] = [
    # -- FINE --
    ('FINEFPN', 'fusion_necks.necks.fine_fpn_mmdet:FINEFPN'),
    # -- ASFF --
    ('ASFFNeck', 'fusion_necks.necks.asff_neck:ASFFNeck'),
    # -- AutoFocusFormer --
    ('AutoFocusFormer',
     'fusion_necks.backbones.autofocusformer_backbone:AutoFocusFormer'),
    ('PointMSDeformAttnPixelDecoder',
     'fusion_necks.decode_heads.point_msdeformattn_pixel_decoder:PointMSDeformAttnPixelDecoder'),
]

MMSEG_MODULES: List[Tuple[str, str]] = [
    # -- FINE --
    ('FINEFPN', 'fusion_necks.necks.fine_fpn_mmseg:FINEFPN'),
    # -- ASFF --
    ('ASFFNeck', 'fusion_necks.necks.asff_neck:ASFFNeck'),
    # -- BAFF-SkipNet --
    ('SkipNetHead', 'fusion_necks.decode_heads.skipnet_head:SkipNetHead'),
    ('SkipNetWarmupHead', 'fusion_necks.decode_heads.skipnet_warmup_head:SkipNetWarmupHead'),
    # -- AutoFocusFormer --
    ('AutoFocusFormer',
     'fusion_necks.backbones.autofocusformer_backbone:AutoFocusFormer'),
    ('PointMSDeformAttnPixelDecoder',
     'fusion_necks.decode_heads.point_msdeformattn_pixel_decoder:PointMSDeformAttnPixelDecoder'),
    ('PointMask2FormerHead',
     'fusion_necks.decode_heads.point_mask2former_head:PointMask2FormerHead'),
]

FRAMEWORKS: Dict[str, List[Tuple[str, str]]] = {
    'mmdet': MMDET_MODULES,
    'mmseg': MMSEG_MODULES,
}


def load_target(target: str) -> type:
    """Import ``'pkg.module:ClassName'`` and return the class."""
    module_name, _, attr = target.partition(':')
    if not attr:
        raise ValueError(f"registry target {target!r} must look like 'pkg.module:ClassName'")
    return getattr(importlib.import_module(module_name), attr)


def framework_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def register_framework(framework: str) -> List[str]:
    """Register this package's modules into ``<framework>.registry.MODELS``.

    Idempotent: registering the same class twice is a no-op, but a name that
    already belongs to another class (an upstream module such as ``FPN``) raises
    ``KeyError`` naming both, so a collision can never silently shadow upstream.

    Returns:
        list[str]: the registry names this package provides in that framework.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f'framework must be one of {sorted(FRAMEWORKS)}, got {framework!r}')
    # Import upstream models first so that a name collision is detected now
    # rather than when the registry lazily imports `<framework>.models` later.
    try:
        models = importlib.import_module(f'{framework}.registry').MODELS
        importlib.import_module(f'{framework}.models')
    except ImportError:
        # The usual cause is an mmcv without its compiled ops; say so and how to fix it.
        from .utils.env_check import check_mmcv_ops
        check_mmcv_ops()
        raise
    names = []
    for name, target in FRAMEWORKS[framework]:
        cls = load_target(target)
        existing = models.module_dict.get(name)
        if existing is cls:
            names.append(name)
            continue
        if existing is not None:
            raise KeyError(
                f'{name!r} is already registered in {framework}.registry.MODELS by '
                f'{existing.__module__}.{existing.__qualname__}; fusion-necks must '
                f'register {target} under another name.')
        models.register_module(name=name, module=cls)
        names.append(name)
    register_sync_bn(models)
    return names


def register_hooks() -> None:
    """Put our mmengine hooks into mmengine's root ``HOOKS`` (seen from every scope)."""
    try:
        from mmengine.registry import HOOKS
    except ImportError:
        return
    from .engine.fusion_stats_hook import FusionStatsHook
    from .engine.progress_hook import ProgressBarHook
    from .engine.weights_only_checkpoint_hook import WeightsOnlyCheckpointHook
    for hook in (WeightsOnlyCheckpointHook, FusionStatsHook, ProgressBarHook):
        existing = HOOKS.module_dict.get(hook.__name__)
        if existing is None:
            HOOKS.register_module(name=hook.__name__, module=hook)
        elif existing is not hook:
            raise KeyError(f"{hook.__name__!r} is already registered in mmengine's HOOKS "
                           f'by {existing.__module__}.{existing.__qualname__}')


def register_sync_bn(models) -> None:
    """Make ``norm_cfg=dict(type='SyncBN')`` build BN on machines without CUDA.

    mmcv registers ``SyncBN`` in mmengine's root registry; an entry of the same name in
    the framework's own ``MODELS`` is found first by ``build_norm_layer`` under that
    framework's scope (``init_model``, ``Runner``, the inferencers). The class is
    :class:`fusion_necks.layers.sync_batch_norm.SyncBatchNorm`: ``nn.SyncBatchNorm`` with
    CUDA (upstream's behaviour), ``nn.BatchNorm2d`` with the same state-dict keys without.
    This is the one upstream name fusion-necks overrides, deliberately.
    """
    from .layers.sync_batch_norm import SyncBatchNorm
    if models.module_dict.get('SyncBN') is not SyncBatchNorm:
        models.register_module(name='SyncBN', module=SyncBatchNorm, force=True)


def register_all_modules(frameworks: Sequence[str] = ('mmdet', 'mmseg')) -> Dict[str, List[str]]:
    """Register into every framework in ``frameworks`` that is installed.

    Returns:
        dict: framework -> registered names (frameworks not installed are absent).
    """
    done = {}
    register_hooks()
    for framework in frameworks:
        if framework_available(framework):
            done[framework] = register_framework(framework)
    return done


#: framework -> names registered when this module was imported (see the module docstring)
registered = register_all_modules()
