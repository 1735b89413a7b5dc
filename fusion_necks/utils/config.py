"""Loading configs and building models the way all our tools do it.

``tools/train.py``, ``tools/test.py`` and ``tools/analysis/*`` share this code: it
applies :mod:`fusion_necks.compat`, picks the framework (mmdet or mmseg) from the
config's ``default_scope``, and turns the registry's ``KeyError`` into a message
that says what to do (usually: add ``custom_imports``).
"""
import contextlib
import difflib
import os.path as osp
import re
from typing import Iterator, List, Optional, Sequence

SCOPES = ('mmdet', 'mmseg')
CUSTOM_IMPORTS_HINT = "custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)"


class ConfigError(ValueError):
    """A config that cannot be used, with a message that says how to fix it."""


def parse_cfg_options(items: Optional[Sequence[str]]) -> Optional[dict]:
    """``['a.b=1', 'c=[1,2]']`` -> ``{'a.b': 1, 'c': [1, 2]}`` (mmengine's ``--cfg-options``)."""
    if not items:
        return None
    import argparse

    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest='options')(None, ns, list(items))
    return ns.options


def load_config(path: str, cfg_options: Optional[dict] = None):
    """``Config.fromfile`` + ``--cfg-options``, with the runtime compat patches applied.

    Our tools register fusion-necks' modules here, explicitly, so that they also run
    configs without our ``custom_imports`` (e.g. the official baselines with SyncBN).
    """
    from mmengine.config import Config

    import fusion_necks.registry  # noqa: F401  (registers on import)
    from fusion_necks.compat import apply_runtime_patches
    apply_runtime_patches()
    if not osp.isfile(path):
        raise ConfigError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def detect_scope(cfg) -> str:
    """``'mmdet'`` or ``'mmseg'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope', None)
    if scope not in SCOPES:
        raise ConfigError(
            f"default_scope is {scope!r}; fusion-necks tools run mmdet or mmseg configs, so "
            "the config must set default_scope='mmdet' or 'mmseg' (inheriting an "
            "mmdet::/mmseg:: base config sets it).")
    return scope


def init_scope(scope: str) -> None:
    """Make ``scope`` the default registry scope and register its modules."""
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.utils import register_all_modules
    else:
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)


_NOT_REGISTERED = re.compile(r"(\S+) is not in the (\S+) registry")


def _registered_names(scope: str) -> List[str]:
    import importlib
    names: List[str] = []
    reg = importlib.import_module(f'{scope}.registry')
    for attr in ('MODELS', 'TASK_UTILS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS'):
        r = getattr(reg, attr, None)
        if r is not None:
            names.extend(r.module_dict)
    return names


def explain_registry_error(err: KeyError, cfg=None) -> Optional[str]:
    """A helpful message for mmengine's "X is not in the Y registry", else None."""
    msg = str(err.args[0]) if err.args else str(err)
    m = _NOT_REGISTERED.search(msg)
    if m is None:
        return None
    name, registry = m.group(1).strip('`\'"'), m.group(2)
    scope = registry.split('::')[0] if '::' in registry else None
    lines = [f'{name!r} is not registered in the {registry} registry.']
    imports = []
    if cfg is not None:
        imports = list((cfg.get('custom_imports', None) or {}).get('imports', []))
    if 'fusion_necks' not in ' '.join(imports):
        lines.append(
            'If it is a fusion-necks module, the config must import the package that '
            f'registers it; add this line to the config:\n    {CUSTOM_IMPORTS_HINT}')
    if scope in SCOPES:
        try:
            close = difflib.get_close_matches(name, _registered_names(scope), n=3)
        except Exception:  # suggestions are a courtesy; never hide the real error
            close = []
        if close:
            lines.append(f'Did you mean: {", ".join(close)}?')
    return '\n'.join(lines)


@contextlib.contextmanager
def friendly_registry_errors(cfg=None) -> Iterator[None]:
    """Re-raise a registry ``KeyError`` as :class:`ConfigError` with a helpful message."""
    try:
        yield
    except KeyError as err:
        text = explain_registry_error(err, cfg)
        if text is None:
            raise
        raise ConfigError(text) from err


def build_model(cfg, scope: Optional[str] = None):
    """Build ``cfg.model`` in its framework's registry (no dataset needed)."""
    scope = scope or detect_scope(cfg)
    init_scope(scope)
    import importlib
    models = importlib.import_module(f'{scope}.registry').MODELS
    with friendly_registry_errors(cfg):
        model = models.build(cfg.model)
    return model


def set_work_dir(cfg, config_path: str, work_dir: Optional[str]) -> str:
    """The work_dir rule of OpenMMLab's tools: CLI, then config, then ./work_dirs/<stem>."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
    return cfg.work_dir


def dataset_cfgs(loader_cfg) -> Sequence[dict]:
    """The leaf dataset configs of a dataloader (unwrapping Repeat/Concat/... wrappers)."""
    out, stack = [], [loader_cfg.get('dataset', None)]
    while stack:
        ds = stack.pop()
        if ds is None:
            continue
        if isinstance(ds, (list, tuple)):
            stack.extend(ds)
        elif 'datasets' in ds:
            stack.extend(ds['datasets'])
        elif 'dataset' in ds:
            stack.append(ds['dataset'])
        else:
            out.append(ds)
    return out
