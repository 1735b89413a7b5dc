"""Input checks shared by tools/image_demo.py and tools/analysis/browse_dataset.py.

Every check raises with a message that names the argument and what was expected, so that a
wrong path or a checkpoint of another model fails before any model is built or file written.
"""
import os
import os.path as osp
import tempfile
from typing import Iterable

import numpy as np


def check_file(path: str, arg: str) -> str:
    """Return ``path`` if it is an existing file, else raise ``FileNotFoundError`` naming ``arg``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{arg}: no such file {path!r}')
    return path


def load_image_rgb3(path: str) -> np.ndarray:
    """Read ``path`` as an (H, W, 3) uint8 BGR array; grayscale/alpha images are converted.

    The framework pipelines expect 3 channels; a 1-channel image is repeated to 3 (documented
    behaviour), a 4-channel one drops alpha. Raises ``ValueError`` naming the file if unreadable.
    """
    import mmcv
    check_file(path, 'IMAGE')
    img = mmcv.imread(path, flag='unchanged')
    if img is None:
        raise ValueError(f'IMAGE: {path!r} is not a readable image file')
    if img.ndim == 2 or img.shape[2] == 1:
        _info(f'IMAGE {path!r} is grayscale: repeated to 3 channels')
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    elif img.shape[2] == 4:
        _info(f'IMAGE {path!r} has an alpha channel: dropped')
        img = img[:, :, :3]
    elif img.shape[2] != 3:
        raise ValueError(f'IMAGE {path!r} has {img.shape[2]} channels; expected 1, 3 or 4')
    if img.dtype == np.uint16:  # 16-bit PNGs: keep the relative intensities
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f'IMAGE {path!r} has dtype {img.dtype}; expected 8- or 16-bit')
    return np.ascontiguousarray(img)


def _info(msg: str) -> None:
    from mmengine.logging import print_log
    print_log(msg, logger='current')


def load_checkpoint_checked(model, checkpoint: str, config: str, trust: bool = False) -> dict:
    """Load ``checkpoint`` into ``model`` after checking that it is a checkpoint of it.

    ``torch.load(weights_only=True)`` unless ``trust`` (a file the user vouches for); the
    state-dict keys must overlap the model's (:func:`check_state_dict_keys`), then mmengine's
    ``load_state_dict`` loads them (it logs missing/unexpected keys). Returns the checkpoint.
    """
    import pickle

    import torch
    from mmengine.runner.checkpoint import _load_checkpoint_to_model
    check_file(checkpoint, 'CKPT')
    try:
        ckpt = torch.load(checkpoint, map_location='cpu', weights_only=not trust)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if 'Unsupported global' in ln]
        if not lines:  # not a weights-only refusal: the bytes are not a checkpoint
            raise ValueError(f'CKPT {checkpoint!r} is not a PyTorch checkpoint '
                             f'(UnpicklingError: {str(err).splitlines()[0][:200]})') from None
        first = lines[0].split('. Please use')[0][:200]
        raise ValueError(
            f'CKPT {checkpoint!r} does not load with torch.load(weights_only=True) ({first}). '
            'Checkpoints written by our tools/train.py do; for another file you trust, pass '
            '--trust-checkpoint') from None
    except Exception as err:  # noqa: BLE001  (garbage bytes raise KeyError, EOFError, ...)
        raise ValueError(f'CKPT {checkpoint!r} is not a PyTorch checkpoint '
                         f'({type(err).__name__}: {err})') from None
    if not isinstance(ckpt, dict):
        raise ValueError(f'CKPT {checkpoint!r} holds a {type(ckpt).__name__}, not a checkpoint dict')
    state_dict = ckpt.get('state_dict', ckpt)
    check_state_dict_keys(model.state_dict().keys(), state_dict.keys(), config, checkpoint)
    _load_checkpoint_to_model(model, ckpt, strict=False)
    return ckpt


def check_state_dict_keys(model_keys: Iterable[str], ckpt_keys: Iterable[str], config: str,
                          checkpoint: str, min_overlap: float = 0.5) -> None:
    """Raise ``ValueError`` if fewer than ``min_overlap`` of the model's keys are in the checkpoint.

    A checkpoint of another model (a detector given to a segmentor config) shares almost no
    keys; loading it non-strictly would silently leave a randomly initialised model.
    """
    model_keys, ckpt_keys = set(model_keys), set(ckpt_keys)
    if not model_keys:
        return
    common = model_keys & ckpt_keys
    if len(common) < min_overlap * len(model_keys):
        miss = sorted(model_keys - ckpt_keys)[:3]
        extra = sorted(ckpt_keys - model_keys)[:3]
        raise ValueError(
            f'CKPT {checkpoint!r} does not match CONFIG {config!r}: only {len(common)} of the '
            f"model's {len(model_keys)} state-dict keys are in the checkpoint "
            f'(model expects e.g. {miss}, checkpoint has e.g. {extra})')


def atomic_write_image(img: np.ndarray, out_file: str) -> None:
    """Write ``img`` (H, W, 3 RGB) to ``out_file`` via a temp file in the same dir + os.replace."""
    import mmcv
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    ext = osp.splitext(out_file)[1] or '.png'
    fd, tmp = tempfile.mkstemp(suffix=ext, dir=out_dir, prefix='.tmp_')
    os.close(fd)
    try:
        if not mmcv.imwrite(img[:, :, ::-1], tmp, auto_mkdir=False):
            raise OSError(f'--out-file: could not write {out_file!r}')
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
