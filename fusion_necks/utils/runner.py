"""Building the mmengine Runner for our tools, with user errors reported plainly."""
import sys
from typing import Callable, Tuple

from ..compat import MissingCheckpointError, UntrustedCheckpointError
from .config import ConfigError, friendly_registry_errors, init_scope
from .data_check import DataNotFoundError
from .env_check import EnvironmentProblem, check_mmcv_ops

# Errors that mean "the user must change something": printed as one message, no traceback.
USER_ERRORS = (ConfigError, DataNotFoundError, EnvironmentProblem, MissingCheckpointError,
               UntrustedCheckpointError)


def build_runner(configure: Callable[[], Tuple[object, str]]):
    """Check mmcv's ops, run ``configure() -> (cfg, scope)``, build the Runner.

    Returns ``(runner, cfg, scope)``.
    """
    check_mmcv_ops()
    cfg, scope = configure()
    init_scope(scope)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    with friendly_registry_errors(cfg):
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    return runner, cfg, scope


def report_user_error(err: Exception) -> int:
    print(f'error: {err}', file=sys.stderr)
    return 2


def run_cli(run: Callable[[object], object], args, errors: Tuple[type, ...] = ()) -> int:
    """``run(args)`` for a command-line tool: 0, or 2 with a one-line message for bad input
    (missing files, bad values, :data:`USER_ERRORS` and the tool's own ``errors``)."""
    try:
        run(args)
    except (FileNotFoundError, ValueError) + USER_ERRORS + tuple(errors) as err:
        return report_user_error(err)
    return 0
