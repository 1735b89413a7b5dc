"""Activation heatmaps of every FINE stage (FINE paper, Figure 8).

    python tools/analysis/visualize_fine.py CONFIG CHECKPOINT IMAGE [--out-dir DIR]
        [--reduce l2|mean|absmean|max] [--interp linear|nearest] [--alpha 0.5]
        [--device cpu] [--cfg-options k=v ...]

Runs the model of CONFIG (an mmdet detector or an mmseg segmentor whose neck has FINE
blocks, e.g. ``configs/fine/*``) with the weights of CHECKPOINT on IMAGE through the
config's test pipeline, records for each FINE block ``F_high``, ``F_low``, the upsampled
modulation map ``M`` and ``F_low^aligned`` (forward hooks of
``fusion_necks.layers.set_fusion_weight_recording``), and writes to
``--out-dir`` (default ``work_dirs/visualize_fine``):

- ``<image>_<stage>_<map>.png``: the heatmap of one map, resized to the image and
  blended over it (``--alpha 0`` for the bare heatmap);
- ``<image>_<stage>.png``: the panel ``image | F_high | F_low | M | aligned F_low``.

``<stage>`` is the block's key and the stride of its low level, e.g. ``level2_s16``.
A map ``C x H x W`` becomes a heatmap by reducing its channels (``--reduce``: ``l2``
norm per position (default; activation strength), ``mean``, ``absmean`` or ``max``),
cropping the padding the data preprocessor added (maps cover the padded network input;
only the part over the resized image is kept), resizing to the original image and
min-max normalising each map on its own (JET colours: red = high).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, Tuple

import numpy as np
import torch

MAP_NAMES = ('high', 'low', 'M', 'aligned')
MAP_TITLES = {'high': 'F_high', 'low': 'F_low', 'M': 'M', 'aligned': 'F_low aligned'}
REDUCTIONS = ('l2', 'mean', 'absmean', 'max')


def reduce_channels(x: torch.Tensor, how: str = 'l2') -> np.ndarray:
    """``C x H x W`` -> ``H x W`` float64."""
    x = x.detach().double()
    if how == 'l2':
        y = x.pow(2).sum(0).sqrt()
    elif how == 'mean':
        y = x.mean(0)
    elif how == 'absmean':
        y = x.abs().mean(0)
    elif how == 'max':
        y = x.amax(0)
    else:
        raise ValueError(f'--reduce must be one of {REDUCTIONS}, got {how!r}')
    return y.cpu().numpy()


def crop_to_image(heat: np.ndarray, img_shape: Tuple[int, int],
                  input_shape: Tuple[int, int]) -> np.ndarray:
    """Keep the part of a map (covering the padded ``input_shape``) over ``img_shape``.

    A stride-``s`` map of the padded input has ``ceil(H_in / s)`` rows; the image covers
    the first ``img_h`` input rows, i.e. the first ``ceil(img_h * rows / H_in)`` map rows.
    """
    rows, cols = heat.shape
    keep_r = min(rows, max(1, -(-img_shape[0] * rows // input_shape[0])))
    keep_c = min(cols, max(1, -(-img_shape[1] * cols // input_shape[1])))
    return heat[:keep_r, :keep_c]


def to_heatmap(heat: np.ndarray, size_hw: Tuple[int, int], interp: str = 'linear') -> np.ndarray:
    """Min-max normalise, resize to ``size_hw`` and colour (BGR uint8, JET)."""
    import cv2
    lo, hi = float(heat.min()), float(heat.max())
    norm = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    flag = cv2.INTER_NEAREST if interp == 'nearest' else cv2.INTER_LINEAR
    norm = cv2.resize(norm.astype(np.float32), (size_hw[1], size_hw[0]), interpolation=flag)
    return cv2.applyColorMap(np.clip(norm * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)


def _titled(img: np.ndarray, title: str) -> np.ndarray:
    import cv2
    bar = np.full((28, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([bar, img], axis=0)


def fine_blocks(model: torch.nn.Module) -> Dict[str, torch.nn.Module]:
    from fusion_necks.layers import FINE
    return {name: m for name, m in model.named_modules() if isinstance(m, FINE)}


def build(config: str, checkpoint: str, device: str = 'cpu', cfg_options=None):
    """The model of ``config`` with the weights of ``checkpoint``, and its scope."""
    from mmengine.runner import load_checkpoint

    from fusion_necks.compat import apply_config_compat
    from fusion_necks.utils.config import build_model, detect_scope, load_config
    cfg = load_config(config, cfg_options)
    scope = detect_scope(cfg)
    apply_config_compat(cfg, offline=True)  # the checkpoint has the weights
    if scope == 'mmseg' and cfg.model.get('test_cfg', {}).get('mode', 'whole') != 'whole':
        # sliding-window inference would only keep the maps of the last window
        cfg.model.test_cfg = dict(mode='whole')
    model = build_model(cfg, scope)
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    model.cfg = cfg
    return model.to(device).eval(), scope


def run(model, scope: str, image: str):
    """Inference on ``image`` with FINE recording on; returns (maps, img_shape, input_shape,
    ori_shape). ``maps`` is ``{block name: {map name: C x H x W tensor}}``."""
    blocks = fine_blocks(model)
    if not blocks:
        raise RuntimeError('the model has no FINE block (is the neck FINEFPN?)')
    from fusion_necks.layers import fusion_weight_maps, set_fusion_weight_recording
    for m in blocks.values():
        set_fusion_weight_recording(m, True)
    seen = {}

    def grab_input(_module, args):
        seen['input_shape'] = tuple(args[0].shape[-2:])

    handle = model.backbone.register_forward_pre_hook(grab_input)
    try:
        with torch.no_grad():
            if scope == 'mmdet':
                from mmdet.apis import inference_detector
                sample = inference_detector(model, image)
            else:
                from mmseg.apis import inference_model
                sample = inference_model(model, image)
    finally:
        handle.remove()
        maps = {name: {k: v[0] for k, v in fusion_weight_maps(m).items()}
                for name, m in blocks.items()}
        for m in blocks.values():
            set_fusion_weight_recording(m, False)
    meta = sample.metainfo
    return maps, tuple(meta['img_shape'][:2]), seen['input_shape'], tuple(meta['ori_shape'][:2])


def infer_stride(map_hw: Tuple[int, int], input_hw: Tuple[int, int]) -> int:
    """The power-of-two stride ``s`` with ``ceil(input / s) == map`` on both axes."""
    for k in range(11):
        s = 2 ** k
        if all(-(-i // s) == m for i, m in zip(input_hw, map_hw)):
            return s
    return max(1, round(input_hw[1] / map_hw[1]))


def stage_name(block_name: str, low_hw: Tuple[int, int], input_hw: Tuple[int, int]) -> str:
    return f"{block_name.split('.')[-1]}_s{infer_stride(low_hw, input_hw)}"


def visualize(config: str, checkpoint: str, image: str, out_dir: str, reduce: str = 'l2',
              interp: str = 'linear', alpha: float = 0.5, device: str = 'cpu',
              cfg_options=None) -> Dict[str, Dict[str, np.ndarray]]:
    """Write the PNGs; returns ``{stage: {map name: H x W heat (before colouring)}}``."""
    import cv2
    if reduce not in REDUCTIONS:
        raise ValueError(f'--reduce must be one of {REDUCTIONS}, got {reduce!r}')
    model, scope = build(config, checkpoint, device, cfg_options)
    maps, img_shape, input_shape, ori_shape = run(model, scope, image)
    picture = cv2.imread(image, cv2.IMREAD_COLOR)
    if picture is None:
        raise FileNotFoundError(f'cannot read image {image!r}')
    picture = cv2.resize(picture, (ori_shape[1], ori_shape[0]))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(image))[0]
    heats = {}
    for block, m in sorted(maps.items()):
        stage = stage_name(block, tuple(m['low'].shape[-2:]), input_shape)
        heats[stage] = {}
        panel = [_titled(picture, f'image ({stage})')]
        for name in MAP_NAMES:
            heat = crop_to_image(reduce_channels(m[name], reduce), img_shape, input_shape)
            heats[stage][name] = heat
            colour = to_heatmap(heat, ori_shape, interp)
            if alpha > 0:
                colour = cv2.addWeighted(picture, alpha, colour, 1 - alpha, 0)
            cv2.imwrite(osp.join(out_dir, f'{stem}_{stage}_{name}.png'), colour)
            panel.append(_titled(colour, MAP_TITLES[name]))
        cv2.imwrite(osp.join(out_dir, f'{stem}_{stage}.png'), np.concatenate(panel, axis=1))
    return heats


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='FINE activation heatmaps (Figure 8)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('image')
    p.add_argument('--out-dir', default=osp.join('work_dirs', 'visualize_fine'))
    p.add_argument('--reduce', choices=REDUCTIONS, default='l2',
                   help='how the channels of a map become one heat value')
    p.add_argument('--interp', choices=('linear', 'nearest'), default='linear',
                   help='resizing of the heatmaps to the image')
    p.add_argument('--alpha', type=float, default=0.5,
                   help='weight of the image in the overlay (0: heatmap only)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    heats = visualize(args.config, args.checkpoint, args.image, args.out_dir, args.reduce,
                      args.interp, args.alpha, args.device, args.cfg_options)
    for stage, maps in heats.items():
        print(f'{stage}: ' + ', '.join(f'{k} {v.shape[0]}x{v.shape[1]}' for k, v in maps.items()))
    print(f'wrote {len(heats) * (len(MAP_NAMES) + 1)} PNGs to {args.out_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
