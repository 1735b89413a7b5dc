"""Draw the learned fusion weights of every fusion module over an image.

    python tools/analysis/visualize_fusion_weights.py CONFIG CHECKPOINT IMAGE \
        [--out-dir DIR] [--alpha 0.5] [--max-panels 16] [--cfg-options KEY=VALUE ...]

Works for any mmdet or mmseg config whose model contains fusion modules that
``fusion_necks.layers.set_fusion_weight_recording`` hooks (ASFF: one per fused level, B x N x H x W
softmax weights; BAFF: B x 1 x H x W sigmoid weights; ...). The image goes through
the config's test pipeline and data preprocessor, the model runs one forward
(``mode='tensor'``: the whole padded image at once, whatever the test mode), and for
every recorded map the tool writes one PNG ``<out-dir>/<module>-<label>-<map>.png``:
the image, then one panel per source with its weight map over the image (colour
scale [0, 1] for weights; min-max for maps outside [0, 1]), then, for two or more
sources, the source with the largest weight at every pixel. Maps are taken from
the feature resolution back to the image: upsampled to the padded input, cropped
to the resized image (``img_shape``), resized to the original image.
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Visualise learned fusion weights (ASFF, BAFF, ...)')
    p.add_argument('config', help='mmdet or mmseg config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('image', help='image file')
    p.add_argument('--out-dir', default='work_dirs/fusion_weights', help='where to write PNGs')
    p.add_argument('--device', default='cpu')
    p.add_argument('--alpha', type=float, default=0.55, help='opacity of the weight maps')
    p.add_argument('--max-panels', type=int, default=16,
                   help='draw at most this many channels of one map')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                   help='override config settings, as in the OpenMMLab tools')
    return p.parse_args(argv)


def _cfg_options(items):
    if not items:
        return None
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=[], dest='o')(None, ns, items)
    return ns.o


# ----------------------------------------------------------------------------- geometry

def maps_to_image(maps, input_hw: Tuple[int, int], img_hw: Tuple[int, int],
                  ori_hw: Tuple[int, int]) -> np.ndarray:
    """``S x h x w`` feature-resolution maps -> ``S x H0 x W0`` over the original image.

    ``input_hw`` is the padded network input, ``img_hw`` the resized image inside it
    (top-left, as OpenMMLab pads bottom/right), ``ori_hw`` the original image.
    Bilinear resampling keeps per-pixel sums (softmax weights still sum to 1).
    """
    import torch.nn.functional as F
    x = maps.detach().float()[None]                        # 1 x S x h x w
    x = F.interpolate(x, size=tuple(input_hw), mode='bilinear', align_corners=False)
    x = x[..., :img_hw[0], :img_hw[1]]
    x = F.interpolate(x, size=tuple(ori_hw), mode='bilinear', align_corners=False)
    return x[0].cpu().numpy()


def _as_channels(tensor):
    """A recorded map as ``S x h x w`` (first image of the batch)."""
    if tensor.dim() == 4:
        return tensor[0]
    if tensor.dim() == 3:
        return tensor[:1]
    raise ValueError(f'cannot draw a map of shape {tuple(tensor.shape)} '
                     '(expected B x S x H x W or B x H x W)')


# ----------------------------------------------------------------------------- model

def build_eval_model(config: str, checkpoint: Optional[str], device: str = 'cpu',
                     cfg_options: Optional[dict] = None):
    """``(model, cfg)``: the config's model in eval mode on ``device``, with ``checkpoint``
    loaded strictly (random weights when it is None). Shared with fusion_weight_stats.py."""
    from mmengine.runner import load_checkpoint

    from fusion_necks.utils.config import build_model, detect_scope, load_config
    cfg = load_config(config, cfg_options)
    model = build_model(cfg, detect_scope(cfg))
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval(), cfg


def load_model_and_data(config: str, checkpoint: Optional[str], image: str, device: str = 'cpu',
                        cfg_options: Optional[dict] = None):
    """Build the model, load the checkpoint, run the test pipeline on ``image``.

    Returns ``(model, data)`` with ``data`` the output of the data preprocessor.
    """
    from mmengine.dataset import Compose, pseudo_collate

    model, cfg = build_eval_model(config, checkpoint, device, cfg_options)
    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline
                if not str(t['type']).split('.')[-1].startswith('LoadAnnotations')]
    results = Compose(pipeline)(dict(img_path=image, img_id=0))
    data = model.data_preprocessor(pseudo_collate([results]), False)
    return model, data


def record_fusion_weights(model, data) -> List[Tuple[str, str, object]]:
    """One forward with recording on; ``[(module_name, map_name, tensor)]``."""
    import torch

    from fusion_necks.layers import iter_fusion_weight_maps, set_fusion_weight_recording
    if set_fusion_weight_recording(model, True) == 0:
        raise RuntimeError('the model contains no fusion module '
                           '(ASFF, BAFF, ...): nothing to visualise')
    try:
        with torch.no_grad():
            model(**data, mode='tensor')
        return list(iter_fusion_weight_maps(model))
    finally:
        set_fusion_weight_recording(model, False)


def image_geometry(data) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    """``(input_hw, img_hw, ori_hw)`` of the first image of a preprocessed batch."""
    inputs = data['inputs']
    input_hw = tuple(int(v) for v in inputs.shape[-2:])
    meta = data['data_samples'][0].metainfo
    img_hw = tuple(int(v) for v in meta.get('img_shape', input_hw)[:2])
    ori_hw = tuple(int(v) for v in meta.get('ori_shape', img_hw)[:2])
    return input_hw, img_hw, ori_hw


# ----------------------------------------------------------------------------- drawing

def _labels(module, n: int) -> List[str]:
    labels = getattr(module, 'fusion_source_labels', None)
    if labels is not None and len(labels) == n:
        return [str(v) for v in labels]
    return [f'source {i}' for i in range(n)]


def draw_weight_maps(image_rgb: np.ndarray, maps: np.ndarray, labels: Sequence[str], title: str,
                     out_file: str, alpha: float = 0.55) -> None:
    """One PNG: the image, one overlay per source, and the per-pixel dominant source."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n = maps.shape[0]
    in_unit = float(maps.min()) >= -1e-6 and float(maps.max()) <= 1 + 1e-6
    vmin, vmax = (0.0, 1.0) if in_unit else (float(maps.min()), float(maps.max()))
    panels = 1 + n + (1 if n > 1 else 0)
    cols = min(panels, 4)
    rows = (panels + cols - 1) // cols
    h, w = image_rgb.shape[:2]
    fig_w = 4.0 * cols
    fig, axes = plt.subplots(rows, cols, figsize=(fig_w, fig_w / cols * h / w * rows + 0.8),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    gray = image_rgb.mean(axis=2, keepdims=True).repeat(3, axis=2) / 255.0
    axes.flat[0].imshow(image_rgb)
    axes.flat[0].set_title('image')
    im = None
    for i in range(n):
        ax = axes.flat[1 + i]
        ax.imshow(gray)
        im = ax.imshow(maps[i], cmap='jet', vmin=vmin, vmax=vmax, alpha=alpha)
        ax.set_title(f'{labels[i]}  (mean {maps[i].mean():.2f})')
    if n > 1:
        ax = axes.flat[1 + n]
        colors = plt.get_cmap('tab10')(np.arange(n) % 10)
        ax.imshow(gray)
        ax.imshow(maps.argmax(axis=0), cmap=ListedColormap(colors), vmin=-0.5, vmax=n - 0.5,
                  alpha=alpha, interpolation='nearest')
        ax.set_title('largest weight')
        ax.legend(handles=[Patch(color=colors[i], label=labels[i]) for i in range(n)],
                  loc='lower right', fontsize='small', framealpha=0.7)
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), shrink=0.8,
                     label='weight' if in_unit else 'value (min-max)')
    fig.suptitle(title)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)


def visualize(model, data, image: str, out_dir: str, alpha: float = 0.55,
              max_panels: int = 16) -> Dict[str, np.ndarray]:
    """Record, map back to the image and write the PNGs; returns ``{png path: maps}``."""
    import mmcv
    os.makedirs(out_dir, exist_ok=True)
    input_hw, img_hw, ori_hw = image_geometry(data)
    image_rgb = mmcv.imread(image, channel_order='rgb')
    if image_rgb.shape[:2] != ori_hw:   # e.g. EXIF rotation in the pipeline
        image_rgb = mmcv.imresize(image_rgb, (ori_hw[1], ori_hw[0]))
    modules = dict(model.named_modules())
    written = {}
    for module_name, map_name, tensor in record_fusion_weights(model, data):
        try:
            channels = _as_channels(tensor)
        except ValueError as err:
            print(f'{module_name}.{map_name}: skipped, {err}')
            continue
        if channels.shape[0] > max_panels:
            print(f'{module_name}.{map_name}: drawing {max_panels} of {channels.shape[0]} channels')
            channels = channels[:max_panels]
        maps = maps_to_image(channels, input_hw, img_hw, ori_hw)
        module = modules[module_name]
        target = getattr(module, 'fusion_target_label', None)
        stem = '-'.join(v for v in (module_name or 'model', target, map_name) if v)
        out_file = osp.join(out_dir, re.sub(r'[^\w.\-]+', '_', stem) + '.png')
        title = f'{module_name} ({type(module).__name__})' + (f' -> {target}' if target else '')
        title += f': {map_name}, {tuple(tensor.shape[-2:])} at the feature level'
        draw_weight_maps(image_rgb, maps, _labels(module, maps.shape[0]), title, out_file, alpha)
        written[out_file] = maps
    return written


def main(argv=None):
    args = parse_args(argv)
    model, data = load_model_and_data(args.config, args.checkpoint, args.image, args.device,
                                      _cfg_options(args.cfg_options))
    written = visualize(model, data, args.image, args.out_dir, args.alpha, args.max_panels)
    for path in written:
        print(path)
    return written


if __name__ == '__main__':
    main()
