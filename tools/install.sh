#!/usr/bin/env bash
# One-command, idempotent set-up of fusion-necks and its pinned OpenMMLab stack.
#
#   bash tools/install.sh            (what `make install` runs)
#
# Environment variables (all optional):
#   PYTHON                interpreter used to create the venv (default: python3.11)
#   VENV                  where the venv lives (default: <repo>/.venv)
#   TORCH_SPEC            pip requirement for torch (default: torch==2.13.0, the CPU
#                         wheel these machines carry). On a GPU machine pass the build
#                         that matches your CUDA, see README "Installing on a GPU machine".
#   TORCH_PIP_ARGS        extra pip arguments for the torch install (e.g. --index-url ...)
#   FUSION_NECKS_WHEELS   folder holding a ready mmcv-2.1.0 wheel (searched first)
#   MMCV_FORCE_BUILD=1    ignore ready wheels and build mmcv 2.1.0 from source
#
# A ready mmcv wheel is searched in $FUSION_NECKS_WHEELS, ../shared/wheels,
# <repo>/wheels and ~/.cache/fusion_necks/wheels (where a source build is kept, so a
# second install never compiles again). Without one, mmcv 2.1.0 is compiled from
# source with its ops (setuptools<81, --no-build-isolation; ~25 min on 2 cores).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_PIP_ARGS=${TORCH_PIP_ARGS:-}
MMCV_VERSION=2.1.0
BUILD_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fusion_necks/wheels
STAMP=$VENV/.fusion_necks_install

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- python 3.11
if [ ! -x "$VENV/bin/python" ]; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    die "Python 3.11 is required but '$PYTHON' was not found on PATH.
  Install it (e.g. 'pyenv install 3.11', 'apt install python3.11 python3.11-venv',
  'conda create -n fn python=3.11') or point PYTHON at it:
      PYTHON=/path/to/python3.11 make install"
  fi
  ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$ver" = "3.11" ] || die "'$PYTHON' is Python $ver; mmcv 2.1.0 / mmdet 3.3.0 need Python 3.11 here.
  Set PYTHON=/path/to/python3.11."
  log "creating $VENV with $PYTHON ($ver)"
  "$PYTHON" -m venv "$VENV" || die "'$PYTHON -m venv' failed; install the venv module (apt install python3.11-venv)."
fi
PY=$VENV/bin/python
PIP="$PY -m pip --disable-pip-version-check"

# ---------------------------------------------------------------- fast path
# The stamp records the inputs of the last successful install; when nothing changed
# and the stack still imports, a rerun takes seconds.
fingerprint=$(cat "$ROOT/tools/install.sh" "$ROOT"/requirements/*.txt "$ROOT/setup.py" \
  | { sha1sum 2>/dev/null || shasum; } | cut -c1-40)
fingerprint="$fingerprint $TORCH_SPEC"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ] \
   && "$PY" -m fusion_necks.utils.env_check --quiet >/dev/null 2>&1; then
  log "already installed and consistent ($VENV); nothing to do"
  exit 0
fi

# ---------------------------------------------------------------- torch first
# torch must be in place before anything that depends on it, so that no package
# (mmcv, mmengine) pulls the registry's newest CUDA build.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  log "installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  $PIP install "$TORCH_SPEC" $TORCH_PIP_ARGS
fi
torch_ver=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
CONSTRAINTS=$VENV/fusion_necks_constraints.txt
printf 'torch==%s\nmmcv==%s\n' "$torch_ver" "$MMCV_VERSION" > "$CONSTRAINTS"
log "torch $torch_ver pinned for the rest of the install"

log "installing runtime dependencies"
$PIP install -q -c "$CONSTRAINTS" -r "$ROOT/requirements/runtime.txt"

# ---------------------------------------------------------------- OpenMMLab
# --no-deps: their dependencies are spelled out in runtime.txt (see there why).
log "installing mmengine, mmdet, mmsegmentation, cityscapesscripts (pinned, --no-deps)"
$PIP install -q --no-deps -c "$CONSTRAINTS" -r "$ROOT/requirements/openmmlab.txt"

# ---------------------------------------------------------------- mmcv with ops
mmcv_ok() { "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'; from mmcv.ops import nms" >/dev/null 2>&1; }
if mmcv_ok; then
  log "mmcv $MMCV_VERSION with compiled ops already installed"
else
  pytag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  wheel=""
  if [ "${MMCV_FORCE_BUILD:-0}" != "1" ]; then
    for d in "${FUSION_NECKS_WHEELS:-}" "$ROOT/../shared/wheels" "$ROOT/wheels" "$BUILD_CACHE"; do
      [ -n "$d" ] && [ -d "$d" ] || continue
      for w in "$d"/mmcv-"$MMCV_VERSION"-"$pytag"-"$pytag"-linux_*.whl; do
        [ -f "$w" ] && { wheel=$w; break 2; }
      done
    done
  fi
  if [ -n "$wheel" ]; then
    log "installing mmcv from ready wheel $wheel"
    $PIP install -q --no-deps --force-reinstall "$wheel"
  else
    log "no ready mmcv wheel found: building mmcv $MMCV_VERSION from source with its ops"
    log "(about 25 minutes on 2 cores; the wheel is kept in $BUILD_CACHE for next time)"
    mkdir -p "$BUILD_CACHE"
    # --no-build-isolation: mmcv's setup.py needs the installed torch to compile ops;
    # setuptools<81 (installed above): setup.py imports pkg_resources.
    MAX_JOBS=${MAX_JOBS:-$(nproc 2>/dev/null || echo 2)} \
      $PIP wheel --no-build-isolation --no-deps -c "$CONSTRAINTS" "mmcv==$MMCV_VERSION" -w "$BUILD_CACHE"
    $PIP install -q --no-deps --force-reinstall "$BUILD_CACHE"/mmcv-"$MMCV_VERSION"-*.whl
  fi
  mmcv_ok || die "mmcv $MMCV_VERSION installed but its compiled ops (mmcv._ext) do not load.
  Rebuild with: MMCV_FORCE_BUILD=1 bash tools/install.sh"
fi

# ---------------------------------------------------------------- us
log "installing fusion_necks (editable)"
$PIP install -q --no-deps --no-build-isolation -e "$ROOT"

"$PY" -m fusion_necks.utils.env_check || die "the environment check failed (see above)"
echo "$fingerprint" > "$STAMP"
log "done: activate with 'source $VENV/bin/activate'"
