"""What the fusion weights learned, over a validation set: the mean weight of every
source inside the ground-truth boxes of small, medium and large objects, per fused level.

    python tools/analysis/fusion_weight_stats.py CONFIG CHECKPOINT [--num-images 200]
           [--json FILE] [--cfg-options KEY=VALUE ...]

For every module with recorded multi-source weights (forward hooks of
``fusion_necks.layers.set_fusion_weight_recording``, e.g. one
ASFF fusion per level: ``B x S x H x W`` softmax weights), every image of the config's
test set goes through the test pipeline and one ``mode='tensor'`` forward. For each
ground-truth box, the weights of the feature pixels whose centres lie inside the box
(at least the pixel under the box centre) are averaged, and these per-object means are
averaged per COCO size class (box area in the original image: small < 32^2 <= medium <
96^2 <= large). ``background`` is the mean over the pixels of the image that lie in no
box. Printed as one table per fused level (rows: size class, columns: sources), whose
rows sum to 1 for softmax weights; ``--json`` writes the same numbers.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, Optional

import numpy as np

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

SIZE_CLASSES = ('small', 'medium', 'large')
GROUPS = SIZE_CLASSES + ('background', )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Fusion weights per object size over a dataset')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--num-images', type=int, default=200, help='first N images of the test set')
    p.add_argument('--device', default='cpu')
    p.add_argument('--json', default=None, help='write the statistics here')
    p.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    return p.parse_args(argv)


def size_class(area: float) -> str:
    """COCO's size classes, by area in the original image."""
    return 'small' if area < 32**2 else 'medium' if area < 96**2 else 'large'


def box_means(weights, boxes, input_hw, img_hw):
    """Per-box and background mean weights at one level.

    ``weights``: ``S x h x w`` (numpy), the weights over the padded input ``input_hw``;
    ``boxes``: ``K x 4`` (x1, y1, x2, y2) in the coordinates of the resized image
    ``img_hw`` (top-left of the padded input). Returns ``(K x S, S or None)``.
    """
    s, h, w = weights.shape
    ys = (np.arange(h) + 0.5) * input_hw[0] / h           # pixel centres, input pixels
    xs = (np.arange(w) + 0.5) * input_hw[1] / w
    in_any = np.zeros((h, w), bool)
    means = np.zeros((len(boxes), s))
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        rows = (ys >= y1) & (ys <= y2)
        cols = (xs >= x1) & (xs <= x2)
        if not rows.any():
            rows = np.abs(ys - (y1 + y2) / 2) == np.abs(ys - (y1 + y2) / 2).min()
        if not cols.any():
            cols = np.abs(xs - (x1 + x2) / 2) == np.abs(xs - (x1 + x2) / 2).min()
        mask = rows[:, None] & cols[None, :]
        in_any |= mask
        means[k] = weights[:, mask].mean(axis=1)
    inside = (ys < img_hw[0])[:, None] & (xs < img_hw[1])[None, :]
    bg = inside & ~in_any
    return means, (weights[:, bg].mean(axis=1) if bg.any() else None)


def collect(model, dataset, num_images: int) -> Dict[str, dict]:
    """Run the model over the first ``num_images`` of ``dataset`` and average the weights.

    Returns ``{module name: {'target': label, 'sources': [labels], 'groups': {group:
    {'mean': [S floats], 'count': n}}}}``; count = objects (background: images).
    """
    import torch
    from mmengine.dataset import pseudo_collate

    from fusion_necks.layers import iter_fusion_weight_maps, set_fusion_weight_recording
    if set_fusion_weight_recording(model, True) == 0:
        raise RuntimeError('the model contains no fusion module (ASFF, ...)')
    modules = dict(model.named_modules())
    sums: Dict[str, Dict[str, np.ndarray]] = {}
    counts: Dict[str, Dict[str, int]] = {}
    try:
        for i in range(min(num_images, len(dataset))):
            data = model.data_preprocessor(pseudo_collate([dataset[i]]), False)
            with torch.no_grad():
                model(**data, mode='tensor')
            sample = data['data_samples'][0]
            input_hw = tuple(int(v) for v in data['inputs'].shape[-2:])
            img_hw = tuple(int(v) for v in sample.metainfo['img_shape'][:2])
            sx, sy = sample.metainfo.get('scale_factor', (1.0, 1.0))[:2]
            boxes = sample.gt_instances.bboxes
            boxes = (boxes.tensor if hasattr(boxes, 'tensor') else boxes).cpu().numpy()
            # test pipelines load the boxes after Resize: original-image coordinates
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            scaled = boxes * np.array([sx, sy, sx, sy])
            for name, map_name, tensor in iter_fusion_weight_maps(model):
                if tensor.dim() != 4 or tensor.shape[1] < 2:
                    continue          # single-source maps (BAFF) have no "which source"
                key = f'{name}.{map_name}'
                w = tensor[0].float().cpu().numpy()
                means, bg = box_means(w, scaled, input_hw, img_hw)
                acc = sums.setdefault(key, {g: np.zeros(w.shape[0]) for g in GROUPS})
                cnt = counts.setdefault(key, {g: 0 for g in GROUPS})
                for m, a in zip(means, areas):
                    acc[size_class(float(a))] += m
                    cnt[size_class(float(a))] += 1
                if bg is not None:
                    acc['background'] += bg
                    cnt['background'] += 1
    finally:
        set_fusion_weight_recording(model, False)
    out = {}
    for key, acc in sums.items():
        module = modules[key.rsplit('.', 1)[0]]
        n = len(next(iter(acc.values())))
        labels = getattr(module, 'fusion_source_labels', None) or [f'source {j}' for j in range(n)]
        out[key] = dict(
            target=getattr(module, 'fusion_target_label', None), sources=list(labels),
            groups={g: dict(mean=(acc[g] / counts[key][g]).tolist() if counts[key][g] else None,
                            count=counts[key][g]) for g in GROUPS})
    return out


def format_tables(stats: Dict[str, dict]) -> str:
    lines = []
    for key, st in stats.items():
        srcs = st['sources']
        lines.append(f"\n{key}" + (f" (fused level {st['target']})" if st['target'] else ''))
        lines.append('| objects | n | ' + ' | '.join(srcs) + ' |')
        lines.append('|---|---|' + '---|' * len(srcs))
        for g in GROUPS:
            m, c = st['groups'][g]['mean'], st['groups'][g]['count']
            cells = ['-'] * len(srcs) if m is None else [
                f'**{v:.2f}**' if v == max(m) else f'{v:.2f}' for v in m]
            lines.append(f'| {g} | {c} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def build(config: str, checkpoint: Optional[str], device: str = 'cpu', cfg_options=None):
    """The model (checkpoint loaded, eval) and the config's test dataset."""
    from mmengine.registry import DATASETS

    from visualize_fusion_weights import build_eval_model   # this folder (sys.path above)
    model, cfg = build_eval_model(config, checkpoint, device, cfg_options)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return model, dataset


def main(argv=None):
    args = parse_args(argv)
    from fusion_necks.utils.config import parse_cfg_options
    model, dataset = build(args.config, args.checkpoint, args.device,
                           parse_cfg_options(args.cfg_options))
    stats = collect(model, dataset, args.num_images)
    print(f'mean fusion weight inside the ground-truth boxes, first '
          f'{min(args.num_images, len(dataset))} images of the test set:')
    print(format_tables(stats))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(stats, f, indent=2)
        print(f'\nwrote {args.json}')
    return stats


if __name__ == '__main__':
    main()
