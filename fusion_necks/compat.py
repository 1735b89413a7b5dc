"""Known breakages of the pinned stack (torch 2.13 + mmengine 0.10.7 + mmcv 2.1.0 +
mmdet 3.3.0 + mmseg 1.2.2), handled in one place.

Nothing here runs at import time: our tools call :func:`apply_runtime_patches`
once and :func:`apply_config_compat` on every config they load, so a user who
imports ``fusion_necks`` in their own code keeps upstream behaviour unless they
opt in the same way. Each fix says which upstream problem it works around.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine
   0.10.7 calls it without ``weights_only``: a checkpoint that pickles more than
   weights (mmengine Runner checkpoints pickle ``HistoryBuffer`` and numpy objects)
   fails with a long ``UnpicklingError``. Checkpoints written by our tools are
   weights-only (item 8), so they load as they are. :func:`patch_checkpoint_loading`
   keeps ``weights_only=True`` for local files and turns the failure into one message
   that names the file and its unsafe globals; a user who trusts such a file (e.g. a
   checkpoint written before item 8, or by upstream's tools) sets
   ``FUSION_NECKS_TRUST_CHECKPOINTS=1`` and it is loaded with ``weights_only=False``,
   with a warning. Loading an untrusted ``.pth`` with ``weights_only=False`` would run
   arbitrary pickled code, so this is never the default.
2. ``_base_ = 'mmdet::...'`` needs ``pkg_resources``, which setuptools >= 82
   removed. :func:`ensure_pkg_resources` installs a tiny importlib.metadata-based
   stand-in when it is missing (the install pins setuptools<81, so this only
   matters in environments we did not set up).
3. ``--amp`` on a machine without CUDA: mmengine's ``AmpOptimWrapper`` asserts a
   GPU. :func:`resolve_amp` keeps fp32 and warns instead of crashing.
4. ``persistent_workers=True`` with ``num_workers=0`` makes torch raise
   ``ValueError``; :func:`fix_dataloaders` switches it off.
5. Distributed runs without CUDA: the base runtimes ask for the ``nccl`` backend
   and mmseg's models for ``SyncBN``, neither of which runs on CPUs; mmengine's
   pytorch launcher calls ``torch.cuda.set_device`` and wraps the model in DDP with
   ``device_ids=[local_rank]``, which CPU modules reject. :func:`fix_distributed`
   selects ``gloo``, plain ``BN`` and ``device_ids=None`` (with a warning) and
   :func:`patch_cpu_distributed` skips the CUDA device selection.
6. numpy 2.4 removed ``np.in1d``, which cityscapesscripts 2.3.0 (behind mmseg's
   ``CityscapesMetric``) still calls. The install pins ``numpy<2.4``;
   :func:`restore_numpy_aliases` maps it to ``np.isin`` in environments we did not
   set up.
7. Configs whose weights would be downloaded (``torchvision://``,
   ``open-mmlab://``, ``http(s)://``) cannot run offline. :func:`make_offline`
   resolves each such URI to a local file (``$FUSION_NECKS_CHECKPOINTS`` or
   ``./checkpoints``, or torch's hub cache). When no local file exists it raises
   :class:`MissingCheckpointError` naming the config key and the files it looked
   for, unless the user asked for offline training (``--offline`` of our
   train/test tools, or ``FUSION_NECKS_OFFLINE=1``): then that initialisation is
   dropped (from scratch) with a warning. Tools that measure or visualise a model
   (FLOPs, latency, export, pictures from a checkpoint) do not need pretrained
   weights and always drop them.
8. Runner checkpoints pickle mmengine ``HistoryBuffer`` and numpy objects, which
   ``torch.load(weights_only=True)`` (what the inferencers and ``init_model`` call on
   torch >= 2.6) refuses. :func:`add_weights_only_checkpoints` adds
   ``fusion_necks.engine.WeightsOnlyCheckpointHook`` to every run our tools start, so
   the checkpoints they write load there.
"""
import copy
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import os.path as osp
import sys
import types
import warnings
from typing import Any, Dict, List, Optional, Tuple



def _log(level: int, msg: str) -> None:
    """mmengine's logger when available (so messages reach the run's log file)."""
    try:
        from mmengine.logging import print_log
        print_log(msg, logger='current', level=level)
    except ImportError:
        logging.getLogger('fusion_necks').log(level, msg)

REMOTE_PREFIXES = ('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://',
                   'mmcls://', 'http://', 'https://')

# The file names torchvision's model zoo uses for the checkpoints OpenMMLab
# configs name as `torchvision://<name>` (mmengine resolves them through
# torchvision, which is not installed here).
TORCHVISION_FILES = {
    'resnet18': 'resnet18-f37072fd.pth',
    'resnet34': 'resnet34-b627a593.pth',
    'resnet50': 'resnet50-0676ba61.pth',
    'resnet101': 'resnet101-63fe2227.pth',
    'resnet152': 'resnet152-394f9c45.pth',
    'resnext50_32x4d': 'resnext50_32x4d-7cdf4587.pth',
    'resnext101_32x8d': 'resnext101_32x8d-8ba56ff5.pth',
    'mobilenet_v2': 'mobilenet_v2-b0353104.pth',
}


# --------------------------------------------------------------------- runtime

TRUST_CHECKPOINTS_ENV = 'FUSION_NECKS_TRUST_CHECKPOINTS'


class UntrustedCheckpointError(ValueError):
    """A local checkpoint pickles more than weights and was not marked as trusted."""


def _unsafe_globals(filename: str) -> List[str]:
    try:
        import torch
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # an unreadable zip or an old format: the message says less
        return []


def load_local_checkpoint(filename: str, map_location=None):
    """``torch.load`` with ``weights_only=True``; see the module docstring, 1."""
    import pickle

    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        if os.environ.get(TRUST_CHECKPOINTS_ENV) != '1':
            unsafe = _unsafe_globals(filename)
            raise UntrustedCheckpointError(
                f'checkpoint {filename} pickles objects beyond weights'
                + (f' ({", ".join(unsafe[:4])}{", ..." if len(unsafe) > 4 else ""})'
                   if unsafe else '')
                + '; loading it would run pickled code. Checkpoints written by our '
                f'tools/train.py load as weights only. If you trust this file, set '
                f'{TRUST_CHECKPOINTS_ENV}=1.') from None
    _log(logging.WARNING, f'{TRUST_CHECKPOINTS_ENV}=1: loading {filename} with '
         'weights_only=False (it pickles objects beyond weights)')
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loading() -> None:
    """mmengine's local-file loader -> :func:`load_local_checkpoint` (docstring, 1)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


class _PkgResourcesFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves a minimal ``pkg_resources`` when setuptools no longer ships one.

    mmengine 0.10.7 only uses ``get_distribution(name)`` (``.location``,
    ``.version``, ``.project_name``) and ``DistributionNotFound``, and it
    ``importlib.reload``s the module, so the stand-in must be findable by a finder.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'pkg_resources':
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        import importlib.metadata as md

        class DistributionNotFound(Exception):
            pass

        class _Distribution:
            def __init__(self, dist):
                self.project_name = dist.metadata['Name']
                self.version = dist.version
                self.location = str(dist.locate_file(''))

        def get_distribution(name: str):
            try:
                return _Distribution(md.distribution(name))
            except md.PackageNotFoundError as e:
                raise DistributionNotFound(name) from e

        module.DistributionNotFound = DistributionNotFound
        module.get_distribution = get_distribution
        module.__fusion_necks_stand_in__ = True


def ensure_pkg_resources() -> bool:
    """Make ``import pkg_resources`` work; returns True when the stand-in was needed."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            import pkg_resources  # noqa: F401
            return False
        except ImportError:
            pass
    # The finder goes last, so it never hides a real pkg_resources installed later.
    if not any(isinstance(f, _PkgResourcesFinder) for f in sys.meta_path):
        sys.meta_path.append(_PkgResourcesFinder())
    return True


def silence_known_warnings() -> None:
    """Deprecation noise from upstream code we cannot change (torch.cuda.amp, pkg_resources)."""
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    warnings.filterwarnings('ignore', category=FutureWarning, module=r'(mmengine|mmdet|mmseg|mmcv)\.')
    warnings.filterwarnings('ignore', message=r'.*torch\.cuda\.amp.*', category=FutureWarning)


def restore_numpy_aliases(np=None) -> List[str]:
    """``np.in1d`` for cityscapesscripts on numpy >= 2.4 (module docstring, 6).

    Args:
        np: the numpy module to patch (default: ``numpy``; tests pass a stand-in
            that lacks ``in1d`` as numpy 2.4 does).

    Returns:
        The names added (empty where numpy still has them).
    """
    if np is None:
        import numpy as np
    added = []
    if 'in1d' not in np.__dict__:
        try:
            np.in1d  # noqa: B018  (numpy < 2.4 still has it, deprecated)
        except AttributeError:
            np.in1d = np.isin  # same semantics for 1-d results; callers reshape
            added.append('in1d')
    return added


def patch_cpu_distributed() -> bool:
    """Let mmengine's pytorch launcher initialise gloo on machines without CUDA."""
    if cuda_available():
        return False
    import mmengine.dist.utils as dist_utils
    import torch.distributed as torch_dist
    if getattr(dist_utils._init_dist_pytorch, '__fusion_necks_cpu__', False):
        return True

    def _init_dist_pytorch_cpu(backend: str = 'gloo', init_backend: str = 'torch', **kwargs) -> None:
        if init_backend != 'torch':
            raise ValueError(f'init_backend={init_backend!r} needs CUDA; on CPUs use the '
                             "'torch' backend with gloo")
        torch_dist.init_process_group(backend=backend, **kwargs)

    _init_dist_pytorch_cpu.__fusion_necks_cpu__ = True  # type: ignore[attr-defined]
    dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu
    return True


_LOGGED_PATCHES: set = set()


def apply_runtime_patches() -> List[str]:
    """Everything our tools need before loading a config; idempotent.

    Each patch that changes something is logged once per process (one line each) and
    returned by name.
    """
    silence_known_warnings()
    applied = {}
    if ensure_pkg_resources():
        applied['pkg_resources'] = ('pkg_resources is missing (setuptools >= 82): a stand-in '
                                    "resolves the mmdet::/mmseg:: base configs (compat 2)")
    patch_checkpoint_loading()
    applied['checkpoint_loading'] = (
        'local checkpoints load with torch.load(weights_only=True); one that pickles more is '
        f'refused unless {TRUST_CHECKPOINTS_ENV}=1 (compat 1)')
    if restore_numpy_aliases():
        applied['numpy_in1d'] = 'numpy >= 2.4 has no np.in1d: aliased to np.isin (compat 6)'
    if patch_cpu_distributed():
        applied['cpu_distributed'] = ("no CUDA: mmengine's pytorch launcher initialises gloo "
                                      'without selecting a GPU (compat 5)')
    for name, msg in applied.items():
        if name not in _LOGGED_PATCHES:
            _LOGGED_PATCHES.add(name)
            _log(logging.INFO, f'compat: {msg}')
    return list(applied)


# --------------------------------------------------------------------- configs

def _iter_dataloader_cfgs(cfg) -> List[Tuple[str, Any]]:
    out = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key, None)
        if loader is not None:
            out.append((key, loader))
    return out


def fix_dataloaders(cfg) -> List[str]:
    """``persistent_workers`` needs worker processes (module docstring, 4)."""
    changed = []
    for key, loader in _iter_dataloader_cfgs(cfg):
        if loader.get('num_workers', 0) == 0 and loader.get('persistent_workers', False):
            loader['persistent_workers'] = False
            changed.append(key)
    return changed


def cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def fix_distributed(cfg) -> List[str]:
    """``gloo`` instead of ``nccl`` and BN instead of SyncBN without CUDA (docstring, 5)."""
    changed: List[str] = []
    if cfg.get('launcher', 'none') == 'none' or cuda_available():
        return changed
    env = cfg.setdefault('env_cfg', {})
    dist = env.setdefault('dist_cfg', {})
    if dist.get('backend', 'nccl') == 'nccl':
        dist['backend'] = 'gloo'
        changed.append('env_cfg.dist_cfg.backend=gloo')
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                     broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', False))
        changed.append('model_wrapper_cfg.device_ids=None')
    elif 'device_ids' not in wrapper:
        wrapper['device_ids'] = None
        changed.append('model_wrapper_cfg.device_ids=None')
    for path, node in _walk(cfg.get('model', {}), 'model'):
        norm = node.get('norm_cfg', None)
        if isinstance(norm, dict) and norm.get('type') == 'SyncBN':
            norm['type'] = 'BN'
            changed.append(f'{path}.norm_cfg.type=BN')
    if changed:
        warnings.warn('distributed run without CUDA: ' + ', '.join(changed))
    return changed


def resolve_amp(cfg, requested: bool) -> bool:
    """Turn on mixed precision the way mmdet/mmseg's train.py do, if a GPU exists.

    Returns whether AMP is on. Without CUDA it warns and keeps fp32 (module
    docstring, 3); it also downgrades an ``AmpOptimWrapper`` already in the config.
    """
    wrapper = cfg.get('optim_wrapper', None)
    in_cfg = wrapper is not None and wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper'
    if not (requested or in_cfg):
        return False
    if not cuda_available():
        warnings.warn('AMP was requested but no CUDA device is available: training in '
                      'fp32 instead (mmengine AmpOptimWrapper needs a GPU).')
        if in_cfg:
            wrapper['type'] = 'OptimWrapper'
            wrapper.pop('loss_scale', None)
        return False
    if requested and not in_cfg:
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper['loss_scale'] = 'dynamic'
    return True


def checkpoint_dirs() -> List[str]:
    dirs = []
    env = os.environ.get('FUSION_NECKS_CHECKPOINTS')
    if env:
        dirs.extend(env.split(os.pathsep))
    dirs.append('checkpoints')
    try:
        import torch
        dirs.append(osp.join(torch.hub.get_dir(), 'checkpoints'))
    except Exception:  # torch.hub may be unusable in odd environments; the others suffice
        pass
    return dirs


def local_checkpoint_for(uri: str) -> Optional[str]:
    """A local file that stands for a remote checkpoint URI, or None."""
    if not uri.startswith(REMOTE_PREFIXES):
        return uri if osp.isfile(osp.expanduser(uri)) else None
    name = uri.split('://', 1)[1]
    candidates = [osp.basename(name)]
    if uri.startswith(('torchvision://', 'modelzoo://')) and name in TORCHVISION_FILES:
        candidates.insert(0, TORCHVISION_FILES[name])
    if not candidates[-1].endswith('.pth'):
        candidates.append(candidates[-1] + '.pth')
    for d in checkpoint_dirs():
        for c in candidates:
            path = osp.join(d, c)
            if osp.isfile(path):
                return path
    return None


def _walk(node: Any, path: str):
    """Yield (dotted path, dict) for every dict inside a config tree."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f'{path}.{k}' if path else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _walk(v, f'{path}[{i}]')


OFFLINE_ENV = 'FUSION_NECKS_OFFLINE'


class MissingCheckpointError(FileNotFoundError):
    """A config names a remote checkpoint that has no local copy (module docstring, 7)."""


def _expected_files(uri: str) -> List[str]:
    name = uri.split('://', 1)[1]
    files = [osp.basename(name)]
    if uri.startswith(('torchvision://', 'modelzoo://')) and name in TORCHVISION_FILES:
        files.insert(0, TORCHVISION_FILES[name])
    return files


def _resolve_pretrained(model) -> Tuple[Dict[str, Optional[str]], Dict[str, str]]:
    """Replace remote checkpoints in ``model`` (in place) by local copies, dropping those
    without one; returns ``({key: local or None}, {key: remote URI})``."""
    report: Dict[str, Optional[str]] = {}
    remote: Dict[str, str] = {}
    for path, node in list(_walk(model, 'model')):
        if node.get('pretrained', None) and isinstance(node['pretrained'], str) \
                and node['pretrained'].startswith(REMOTE_PREFIXES):
            remote[f'{path}.pretrained'] = node['pretrained']
            local = local_checkpoint_for(node['pretrained'])
            report[f'{path}.pretrained'] = local
            node['pretrained'] = local
        init = node.get('init_cfg', None)
        inits = init if isinstance(init, list) else [init]
        for i, ic in enumerate(inits):
            if not isinstance(ic, dict) or ic.get('type') != 'Pretrained':
                continue
            ckpt = ic.get('checkpoint', None)
            if not isinstance(ckpt, str) or not ckpt.startswith(REMOTE_PREFIXES):
                continue
            local = local_checkpoint_for(ckpt)
            key = f'{path}.init_cfg' + (f'[{i}]' if isinstance(init, list) else '')
            remote[key + '.checkpoint'] = ckpt
            report[key + '.checkpoint'] = local
            if local is not None:
                ic['checkpoint'] = local
            elif isinstance(init, list):
                init[i] = None
            else:
                node['init_cfg'] = None
        if isinstance(init, list) and any(x is None for x in init):
            node['init_cfg'] = [x for x in init if x is not None] or None
    return report, remote


def make_offline(cfg, offline: Optional[bool] = None) -> Dict[str, Optional[str]]:
    """Resolve remote pretrained weights to local files (module docstring, 7).

    Args:
        cfg: the config; changed in place.
        offline: drop what has no local copy (from scratch, with a warning) instead of
            raising :class:`MissingCheckpointError`. Default: ``$FUSION_NECKS_OFFLINE``
            is ``'1'``.

    Returns ``{config key: local path or None (dropped)}`` for every remote URI found
    in ``model`` (``init_cfg.checkpoint`` anywhere, and mmseg's ``model.pretrained``).
    """
    if offline is None:
        offline = os.environ.get(OFFLINE_ENV) == '1'
    model = cfg.get('model', None)
    if model is None:
        return {}
    # an error leaves the config untouched: find what is missing on a copy first
    report, remote = _resolve_pretrained(copy.deepcopy(model) if not offline else model)
    missing = [k for k, local in report.items() if local is None]
    if missing and not offline:
        k = missing[0]
        raise MissingCheckpointError(
            f'{k} = {remote[k]!r} has no local copy (looked for '
            f'{" or ".join(_expected_files(remote[k]))} in {", ".join(checkpoint_dirs())}); '
            f'nothing is downloaded. Put the file there, pass --cfg-options {k}=/path/to/'
            f'weights.pth, or train from scratch with --offline (or {OFFLINE_ENV}=1)'
            + (f'; {len(missing) - 1} more key(s) like it' if len(missing) > 1 else ''))
    if not offline:
        report, remote = _resolve_pretrained(model)
    for key, local in report.items():
        if local is None:
            _log(logging.WARNING,
                 f'{key} names a remote checkpoint that is not available offline: '
                 'initialising from scratch (offline mode). To use pretrained weights, put '
                 'the file in ./checkpoints (or $FUSION_NECKS_CHECKPOINTS) or pass '
                 f'--cfg-options {key}=/path/to/weights.pth')
        else:
            _log(logging.INFO, f'{key}: using local checkpoint {local}')
    return report


def add_weights_only_checkpoints(cfg) -> bool:
    """Add ``WeightsOnlyCheckpointHook`` to ``custom_hooks`` (docstring, 8); True if added."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if any(isinstance(h, dict) and h.get('type') == 'WeightsOnlyCheckpointHook' for h in hooks):
        return False
    hooks.append(dict(type='WeightsOnlyCheckpointHook'))
    cfg.custom_hooks = hooks
    _log(logging.INFO, 'custom_hooks += WeightsOnlyCheckpointHook: checkpoints load with '
         "torch.load(weights_only=True), as DetInferencer/MMSegInferencer/init_model need")
    return True


def apply_config_compat(cfg, amp: bool = False, offline: Optional[bool] = None) -> Dict[str, Any]:
    """Apply every config-level fix; returns what was changed (for logging and tests).

    ``offline``: see :func:`make_offline` (True for tools that only measure or
    visualise a model, whose pretrained weights do not matter).
    """
    return dict(persistent_workers=fix_dataloaders(cfg), amp=resolve_amp(cfg, amp),
                distributed=fix_distributed(cfg), pretrained=make_offline(cfg, offline),
                weights_only_checkpoints=add_weights_only_checkpoints(cfg))
