"""A deterministic synthetic detection / instance-segmentation set in COCO format.

Filled shapes (five classes) of random colour and shading on cluttered textured
backgrounds. Object sizes (square root of the area) are log-uniform between
``min_size`` and ``max_size`` pixels (8 to 200 by default), which gives COCO's mix of
small (< 32^2 px area, ~40%), medium (~35%) and large (~25%) objects, minus what
does not fit in the image. Later objects may occlude earlier ones, but never by
more than ``max_occlusion`` of their area, so every object the image shows is
annotated; the annotation describes the *visible* part (COCO's convention): its
polygons come from the visible mask, its box and area too.

Layout written by :func:`generate_synthetic_coco` (the official COCO one, so the
official configs work with only ``data_root`` changed)::

    <out_dir>/annotations/instances_{train,val}2017.json
    <out_dir>/{train,val}2017/<image_id:012d>.jpg

Each image is drawn from its own generator seeded by ``(seed, split, index)``,
so asking for more images keeps the first ones unchanged. The JSON carries
``"info": {}`` (pycocotools 2.0.9/2.0.10 need it) and unique annotation ids.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .textures import shaded_fill, textured_background

CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star', 'cross')
SPLITS = {'train': 0, 'val': 1}


def shape_polygon(name: str, rng: np.random.Generator, size: float,
                  centre: Tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Vertices (``K x 2``, float, x/y) of a shape whose area is ``size ** 2`` px.

    ``size`` is the square root of the area, the quantity COCO's small/medium/large
    buckets threshold (32 and 96 px).
    """
    r = 1.0
    theta = rng.uniform(0, 2 * np.pi)
    if name == 'circle':
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        aspect = rng.uniform(0.85, 1.0)  # slightly elliptic
        pts = np.stack([r * np.cos(angles), aspect * r * np.sin(angles)], 1)
    elif name == 'square':
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * r / np.sqrt(2) * 1.3
    elif name == 'triangle':
        angles = np.array([0, 2, 4]) * np.pi / 3 + rng.uniform(-0.15, 0.15, 3)
        pts = np.stack([r * np.cos(angles), r * np.sin(angles)], 1)
    elif name == 'star':
        angles = np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    elif name == 'cross':
        a, b = r, r * 0.33
        pts = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                        [-b, b], [-a, b], [-a, -b], [-b, -b]], np.float64)
    else:
        raise ValueError(f'unknown shape {name!r}; expected one of {CLASSES}')
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = pts @ rot.T
    area = 0.5 * abs(np.dot(pts[:, 0], np.roll(pts[:, 1], 1)) - np.dot(pts[:, 1], np.roll(pts[:, 0], 1)))
    return pts * (size / np.sqrt(area)) + np.asarray(centre, np.float64)[None, :]


def visible_annotation(mask: np.ndarray, min_fraction: float = 0.02,
                       min_pixels: int = 6) -> Tuple[np.ndarray, List[List[float]]]:
    """Clean a visible mask and return it with its COCO polygons.

    Occlusion can leave slivers of a few pixels; components smaller than
    ``min_fraction`` of the visible area (or ``min_pixels``) are dropped, and so is
    any part no polygon of >= 3 vertices describes, so that the box, the area and
    the polygons of an annotation describe the same pixels.
    """
    m = mask.astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    total = stats[1:, cv2.CC_STAT_AREA].sum()
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(min_pixels, min_fraction * total)
    m = keep[comp].astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [c for c in contours if len(c) >= 3]
    covered = np.zeros_like(m)
    cv2.fillPoly(covered, contours, 1)
    polys = [[float(v) for v in c.reshape(-1)] for c in contours]
    return (m & covered).astype(bool), polys


def _has_hole(mask: np.ndarray) -> bool:
    """Whether a binary mask has an interior hole (a contour with a parent)."""
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP,
                                           cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _occlusion_ok(obj: Dict, occluder: np.ndarray, max_occlusion: float) -> bool:
    rest = obj['mask'] & ~occluder
    if rest.sum() < (1 - max_occlusion) * obj['area_full']:
        return False
    return not ((obj['mask'] & occluder).any() and _has_hole(rest))


def draw_image(rng: np.random.Generator, height: int, width: int, classes: Sequence[str],
               num_objects: Tuple[int, int], min_size: float, max_size: float,
               max_occlusion: float) -> Tuple[np.ndarray, List[Dict]]:
    """Draw one image; returns it (``H x W x 3`` uint8, BGR) and its objects.

    Each object is ``dict(label, mask (H x W bool, visible part))``.
    """
    img = textured_background(rng, (height, width)).astype(np.float32)
    max_extent = 0.9 * min(height, width)
    hi = min(max_size, max_extent)
    lo = min(min_size, hi)
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    objects: List[Dict] = []
    for _ in range(n):
        for _attempt in range(20):
            label = int(rng.integers(len(classes)))
            size = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            poly = shape_polygon(classes[label], rng, size)
            extent = float((poly.max(0) - poly.min(0)).max())
            if extent > max_extent:  # large thin shapes must still fit in the image
                poly *= max_extent / extent
            lo_xy, hi_xy = poly.min(0), poly.max(0)
            poly += np.array([rng.uniform(-lo_xy[0], width - 1 - hi_xy[0]),
                              rng.uniform(-lo_xy[1], height - 1 - hi_xy[1])])
            full = np.zeros((height, width), np.uint8)
            cv2.fillPoly(full, [np.round(poly).astype(np.int32)], 1)
            full = full.astype(bool)
            if full.sum() < 16:
                continue
            # Reject placements that would hide too much of an earlier object, or
            # punch a hole into it (COCO polygons cannot describe holes).
            if all(_occlusion_ok(o, full, max_occlusion) for o in objects):
                break
        else:
            continue
        for o in objects:
            o['mask'] &= ~full
        region = img[full]
        bg_lum = float(region.mean()) if region.size else 128.0
        colour = rng.uniform(0, 255, 3)
        if abs(colour.mean() - bg_lum) < 50:  # keep the object visible against its surround
            colour = np.clip(255 - colour + rng.uniform(-20, 20, 3), 0, 255)
            if abs(colour.mean() - bg_lum) < 50:
                colour = np.full(3, 20.0 if bg_lum > 128 else 235.0)
        fill = shaded_fill(rng, (height, width), colour)
        # Anti-aliased edges for the picture; the annotation uses the hard mask.
        soft = np.zeros((height, width), np.uint8)
        cv2.fillPoly(soft, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
        alpha = (soft.astype(np.float32) / 255.0)[..., None]
        img = img * (1 - alpha) + fill * alpha
        objects.append(dict(label=label, mask=full, area_full=int(full.sum())))
    img += rng.normal(0, 3, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), objects


def generate_split(out_dir: str, split: str, num_images: int, seed: int = 0,
                   classes: Sequence[str] = CLASSES,
                   image_size: Tuple[int, int, int, int] = (288, 352, 288, 352),
                   num_objects: Tuple[int, int] = (2, 10), min_size: float = 8,
                   max_size: float = 200, max_occlusion: float = 0.5,
                   start_image_id: int = 1, start_ann_id: int = 1) -> Dict:
    """Write the images of one split and return its COCO dict.

    Args:
        image_size: ``(min_h, max_h, min_w, max_w)``; each image draws its size in
            that range (so batches need padding, as on COCO).
    """
    if split not in SPLITS:
        raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
    img_dir = osp.join(out_dir, f'{split}2017')
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    ann_id = start_ann_id
    for index in range(num_images):
        rng = np.random.default_rng([seed, SPLITS[split], index])
        h = int(rng.integers(image_size[0], image_size[1] + 1))
        w = int(rng.integers(image_size[2], image_size[3] + 1))
        img, objects = draw_image(rng, h, w, classes, num_objects, min_size, max_size, max_occlusion)
        image_id = start_image_id + index
        file_name = f'{image_id:012d}.jpg'
        cv2.imwrite(osp.join(img_dir, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        images.append(dict(id=image_id, file_name=file_name, height=h, width=w))
        for o in objects:
            mask, polys = visible_annotation(o['mask'])
            ys, xs = np.nonzero(mask)
            if len(xs) == 0 or not polys:
                continue
            x0, y0 = int(xs.min()), int(ys.min())
            bw, bh = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
            annotations.append(dict(
                id=ann_id, image_id=image_id, category_id=o['label'] + 1,
                bbox=[x0, y0, bw, bh], area=int(mask.sum()), iscrowd=0,
                segmentation=polys))
            ann_id += 1
    return dict(info={}, licenses=[], images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=c, supercategory='shape')
                            for i, c in enumerate(classes)])


def generate_synthetic_coco(out_dir: str, num_train: int = 1000, num_val: int = 200,
                            seed: int = 0, overwrite: bool = False,
                            **kwargs) -> Dict[str, str]:
    """Generate train and val splits under ``out_dir``; returns the annotation paths.

    Extra keyword arguments go to :func:`generate_split` (``image_size``,
    ``num_objects``, ``min_size``, ``max_size``, ``max_occlusion``, ``classes``).
    Existing annotation files are kept unless ``overwrite`` is set.
    """
    paths = {}
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    image_id, ann_id = 1, 1
    for split, num in (('train', num_train), ('val', num_val)):
        path = osp.join(ann_dir, f'instances_{split}2017.json')
        paths[split] = path
        if osp.exists(path) and not overwrite:
            with open(path) as f:
                coco = json.load(f)
        else:
            coco = generate_split(out_dir, split, num, seed=seed, start_image_id=image_id,
                                  start_ann_id=ann_id, **kwargs)
            with open(path, 'w') as f:
                json.dump(coco, f)
        # ids stay unique across splits (convenient when the splits are merged)
        image_id = max([i['id'] for i in coco['images']], default=image_id - 1) + 1
        ann_id = max([a['id'] for a in coco['annotations']], default=ann_id - 1) + 1
    return paths


def size_histogram(coco: Dict) -> Dict[str, int]:
    """Count annotations per COCO size bucket (by area, as COCOeval does)."""
    areas = np.array([a['area'] for a in coco['annotations']], dtype=np.float64)
    return dict(small=int((areas < 32 ** 2).sum()),
                medium=int(((areas >= 32 ** 2) & (areas < 96 ** 2)).sum()),
                large=int((areas >= 96 ** 2).sum()))


def summary(coco: Dict, classes: Optional[Sequence[str]] = None) -> str:
    hist = size_histogram(coco)
    per_img = len(coco['annotations']) / max(len(coco['images']), 1)
    return (f"{len(coco['images'])} images, {len(coco['annotations'])} objects "
            f"({per_img:.1f}/image; small {hist['small']}, medium {hist['medium']}, "
            f"large {hist['large']})")
