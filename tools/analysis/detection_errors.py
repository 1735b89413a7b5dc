"""Detection error analysis (FINE paper, Table 5): TP, FP, FN, precision, recall, F1.

    python tools/analysis/detection_errors.py ANN_JSON RESULTS.pkl [RESULTS2.pkl ...]
        [--names FPN FINE] [--iou-thr 0.5] [--score-thr 0.5] [--class-agnostic]
        [--classes NAME ...] [--out errors.json]

``RESULTS.pkl`` is what ``tools/test.py CONFIG CKPT --out RESULTS.pkl`` writes (mmdet's
``DumpDetResults``: one dict per image with ``img_id`` and ``pred_instances`` holding
``bboxes`` (x1, y1, x2, y2 in original-image pixels), ``scores`` and ``labels``);
``ANN_JSON`` is the COCO-format ground truth of the same split. With two or more result
files the table gets an "Improvement" row (last vs first, in %), as Table 5.

Counting, per image and per class (``--class-agnostic``: ignoring classes):

- detections with ``score >= --score-thr`` are taken in descending score order; each is
  matched to the unmatched non-crowd ground truth box of its class with the highest IoU,
  if that IoU is ``>= --iou-thr``: a true positive (TP);
- an unmatched detection that covers a crowd region (COCO's crowd IoU, intersection over
  the detection's area, ``>= --iou-thr``) is ignored, as in COCO evaluation; any other is
  a false positive (FP): background, wrong class, poor localisation or a duplicate;
- non-crowd ground truth boxes left unmatched are false negatives (FN);
- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = their harmonic mean.

Every image of ``ANN_JSON`` counts (an image without detections contributes its ground
truth as FNs). Labels map to COCO category ids as mmdet's ``CocoMetric`` does: label
``i`` is the ``i``-th category of the json, in file order, among those named in
``--classes`` (default: all categories); ground truth of other categories is not counted.
"""
import argparse
import json
import pickle
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``N x 4`` and ``M x 4`` x1y1x2y2 boxes (COCO convention: no +1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the area of ``a`` (COCO's IoU with crowd regions)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    return np.where(area_a[:, None] > 0, inter / np.maximum(area_a[:, None], 1e-12), 0.0)


def match_image(det_boxes: np.ndarray, det_scores: np.ndarray, det_cats: np.ndarray,
                gt_boxes: np.ndarray, gt_cats: np.ndarray, gt_crowd: np.ndarray,
                iou_thr: float = 0.5, score_thr: float = 0.5,
                class_agnostic: bool = False) -> Dict[str, int]:
    """TP/FP/FN of one image (see the module docstring for the rules)."""
    keep = det_scores >= score_thr
    det_boxes, det_scores, det_cats = det_boxes[keep], det_scores[keep], det_cats[keep]
    if class_agnostic:
        det_cats = np.zeros_like(det_cats)
        gt_cats = np.zeros_like(gt_cats)
    tp = fp = fn = 0
    for cat in np.union1d(np.unique(det_cats), np.unique(gt_cats)):
        d = np.flatnonzero(det_cats == cat)
        d = d[np.argsort(-det_scores[d], kind='stable')]
        g = np.flatnonzero((gt_cats == cat) & ~gt_crowd)
        c = np.flatnonzero((gt_cats == cat) & gt_crowd)
        ious = box_iou(det_boxes[d], gt_boxes[g]) if len(d) and len(g) else None
        ioas = box_ioa(det_boxes[d], gt_boxes[c]) if len(d) and len(c) else None
        matched = np.zeros(len(g), dtype=bool)
        for row in range(len(d)):
            if ious is not None:
                cand = np.where(matched, -1.0, ious[row])
                best = int(np.argmax(cand))
                if cand[best] >= iou_thr:
                    matched[best] = True
                    tp += 1
                    continue
            if ioas is not None and ioas[row].max() >= iou_thr:
                continue  # on a crowd region: ignored
            fp += 1
        fn += int((~matched).sum())
    return dict(tp=tp, fp=fp, fn=fn)


def summarise(tp: int, fp: int, fn: int, num_images: int) -> Dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return dict(images=num_images, tp=tp, fp=fp, fn=fn, precision=precision, recall=recall,
                f1=f1)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def load_results(path: str) -> List[dict]:
    """The per-image predictions of a ``DumpDetResults`` pickle (or a list like it)."""
    with open(path, 'rb') as f:
        results = pickle.load(f)
    out = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or 'pred_instances' not in r or 'img_id' not in r:
            raise ValueError(f'{path}: entry {i} is not a detection result of '
                             "tools/test.py --out (a dict with 'img_id' and 'pred_instances')")
        pred = r['pred_instances']
        out.append(dict(img_id=r['img_id'],
                        bboxes=_to_numpy(pred['bboxes']).reshape(-1, 4).astype(np.float64),
                        scores=_to_numpy(pred['scores']).reshape(-1).astype(np.float64),
                        labels=_to_numpy(pred['labels']).reshape(-1).astype(np.int64)))
    return out


def load_ground_truth(ann_file: str, classes: Optional[Sequence[str]] = None):
    """COCO json -> (per-image GT arrays, label -> category id list)."""
    with open(ann_file) as f:
        coco = json.load(f)
    cats = coco['categories']
    if classes is not None:
        unknown = set(classes) - {c['name'] for c in cats}
        if unknown:
            raise ValueError(f'--classes names not in {ann_file}: {sorted(unknown)}')
        cats = [c for c in cats if c['name'] in set(classes)]
    label_to_cat = [c['id'] for c in cats]
    evaluated = set(label_to_cat)
    per_image = {img['id']: ([], [], []) for img in coco['images']}
    for ann in coco.get('annotations', []):
        if ann['image_id'] not in per_image or ann['category_id'] not in evaluated:
            continue
        x, y, w, h = ann['bbox']
        boxes, cat_ids, crowd = per_image[ann['image_id']]
        boxes.append([x, y, x + w, y + h])
        cat_ids.append(ann['category_id'])
        crowd.append(bool(ann.get('iscrowd', 0)))
    gts = {i: (np.asarray(b, np.float64).reshape(-1, 4), np.asarray(c, np.int64),
               np.asarray(z, bool)) for i, (b, c, z) in per_image.items()}
    return gts, label_to_cat


def evaluate(results: List[dict], ann_file: str, iou_thr: float = 0.5,
             score_thr: float = 0.5, class_agnostic: bool = False,
             classes: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """Table 5's counts and rates of one result list against ``ann_file``."""
    gts, label_to_cat = load_ground_truth(ann_file, classes)
    label_to_cat = np.asarray(label_to_cat, np.int64)
    by_image = {}
    for r in results:
        if r['img_id'] not in gts:
            warnings.warn(f"img_id {r['img_id']} of the results is not in {ann_file}: skipped")
            continue
        by_image[r['img_id']] = r
    total = dict(tp=0, fp=0, fn=0)
    for img_id, (gt_boxes, gt_cats, gt_crowd) in gts.items():
        r = by_image.get(img_id)
        if r is None:
            det = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
        else:
            if len(r['labels']) and r['labels'].max() >= len(label_to_cat):
                raise ValueError(f"label {r['labels'].max()} but {ann_file} has only "
                                 f'{len(label_to_cat)} categories (see --classes)')
            det = (r['bboxes'], r['scores'], label_to_cat[r['labels']])
        counts = match_image(*det, gt_boxes, gt_cats, gt_crowd, iou_thr, score_thr,
                             class_agnostic)
        for k in total:
            total[k] += counts[k]
    return summarise(total['tp'], total['fp'], total['fn'], len(gts))


def improvement(first: Dict[str, float], last: Dict[str, float]) -> Dict[str, float]:
    """Relative change in % (Table 5's last row)."""
    return {k: (100.0 * (last[k] - first[k]) / first[k] if first[k] else float('nan'))
            for k in ('tp', 'fp', 'fn', 'precision', 'recall', 'f1')}


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    names = list(rows)
    width = max(12, *(len(n) for n in names))
    head = (f"{'':{width}} {'#Images':>8} {'#TPs':>8} {'#FPs':>8} {'#FNs':>8} "
            f"{'Precision':>9} {'Recall':>7} {'F1-score':>8}")
    lines = [head]
    for n in names:
        r = rows[n]
        lines.append(f"{n:{width}} {r['images']:>8,} {r['tp']:>8,} {r['fp']:>8,} "
                     f"{r['fn']:>8,} {r['precision']:>9.3f} {r['recall']:>7.3f} "
                     f"{r['f1']:>8.3f}")
    if len(names) > 1:
        imp = improvement(rows[names[0]], rows[names[-1]])
        lines.append(f"{'Improvement':{width}} {'-':>8} {imp['tp']:>+7.2f}% {imp['fp']:>+7.2f}% "
                     f"{imp['fn']:>+7.2f}% {imp['precision']:>+8.2f}% {imp['recall']:>+6.2f}% "
                     f"{imp['f1']:>+7.2f}%")
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='TP/FP/FN analysis of detection results '
                                '(FINE paper, Table 5)')
    p.add_argument('ann_file', help='COCO-format ground-truth json')
    p.add_argument('results', nargs='+', help='.pkl files of tools/test.py --out')
    p.add_argument('--names', nargs='+', help='row names (default: the file names)')
    p.add_argument('--iou-thr', type=float, default=0.5)
    p.add_argument('--score-thr', type=float, default=0.5)
    p.add_argument('--class-agnostic', action='store_true',
                   help='match detections to ground truth of any class')
    p.add_argument('--classes', nargs='+',
                   help="the dataset's class names if not all json categories are used")
    p.add_argument('--out', help='also write the rows (and the improvement) to this json')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    names = args.names or args.results
    if len(names) != len(args.results):
        print('error: --names needs one name per results file', file=sys.stderr)
        return 2
    rows = {}
    for name, path in zip(names, args.results):
        rows[name] = evaluate(load_results(path), args.ann_file, args.iou_thr, args.score_thr,
                              args.class_agnostic, args.classes)
    print(f'IoU threshold {args.iou_thr}, score threshold {args.score_thr}'
          + (', class-agnostic' if args.class_agnostic else ''))
    print(format_table(rows))
    if args.out:
        payload = dict(rows=rows, iou_thr=args.iou_thr, score_thr=args.score_thr,
                       class_agnostic=args.class_agnostic)
        if len(rows) > 1:
            payload['improvement'] = improvement(rows[names[0]], rows[names[-1]])
        with open(args.out, 'w') as f:
            json.dump(payload, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
