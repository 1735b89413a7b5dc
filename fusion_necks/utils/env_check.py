"""Check that the pinned OpenMMLab stack is installed correctly.

``python -m fusion_necks.utils.env_check`` prints the versions and exits non-zero
with a message saying how to fix the first problem found. ``tools/install.sh``
runs it at the end of every install; ``tools/train.py`` and ``tools/test.py`` call
:func:`check_mmcv_ops` before building a model so that a broken mmcv is reported
as such instead of as an obscure ``ImportError`` deep inside mmdet.
"""
import argparse
import importlib
import sys
from typing import List, Optional, Tuple

EXPECTED = {
    'torch': None,  # any; the install script decides which build
    'mmengine': '0.10.7',
    'mmcv': '2.1.0',
    'mmdet': '3.3.0',
    'mmseg': '1.2.2',
}

FIX_MMCV = (
    'mmcv {version} is installed without its compiled ops (mmcv._ext): {err}\n'
    'mmdet and mmseg import mmcv.ops at module level, so mmcv-lite or a build '
    'made without torch in the build environment does not work. Fix it with\n'
    '    MMCV_FORCE_BUILD=1 bash tools/install.sh\n'
    'or, by hand: pip install "setuptools<81" ninja && '
    'pip install --no-build-isolation --force-reinstall --no-deps mmcv==2.1.0')


class EnvironmentProblem(RuntimeError):
    """Raised when the installed stack cannot run fusion-necks."""


def check_mmcv_ops() -> None:
    """Raise :class:`EnvironmentProblem` unless mmcv's compiled ops load."""
    try:
        import mmcv
    except ImportError as e:
        raise EnvironmentProblem(
            f'mmcv is not installed ({e}); run `make install`.') from e
    try:
        from mmcv.ops import nms  # noqa: F401  (loads mmcv._ext)
    except (ImportError, ModuleNotFoundError, OSError) as e:
        raise EnvironmentProblem(
            FIX_MMCV.format(version=mmcv.__version__, err=e)) from e


def _version(module: str) -> Tuple[Optional[str], Optional[str]]:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # report any import failure, not only ImportError
        return None, f'{type(e).__name__}: {e}'
    return getattr(mod, '__version__', '?'), None


def collect_problems() -> Tuple[List[str], List[str]]:
    lines, problems = [], []
    for module, want in EXPECTED.items():
        got, err = _version(module)
        if err is not None:
            problems.append(f'{module} does not import: {err}')
            lines.append(f'{module:10s} MISSING')
            continue
        lines.append(f'{module:10s} {got}')
        if want is not None and got != want:
            problems.append(f'{module} {got} is installed, fusion-necks is tested '
                            f'with {want}; run `make install`.')
    if not any(p.startswith('mmcv ') for p in problems):
        try:
            check_mmcv_ops()
            lines.append('mmcv.ops   compiled ops load')
        except EnvironmentProblem as e:
            problems.append(str(e))
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        problems.append(
            "pkg_resources is missing (setuptools>=82), so `_base_ = 'mmdet::...'` "
            "configs cannot be resolved by mmengine 0.10.7; run "
            "pip install 'setuptools<81'.")
    for extra in ('ftfy', 'regex', 'pycocotools', 'cityscapesscripts'):
        got, err = _version(extra)
        if err is not None:
            problems.append(f'{extra} does not import ({err}); run `make install`.')
    return lines, problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quiet', action='store_true')
    args = parser.parse_args(argv)
    lines, problems = collect_problems()
    if not args.quiet:
        print('\n'.join(lines))
    for p in problems:
        print(f'PROBLEM: {p}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
