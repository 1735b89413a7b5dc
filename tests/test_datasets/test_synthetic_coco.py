"""The synthetic COCO set: format, determinism, and evaluation through the real metric."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

from fusion_necks.datasets.synthetic_coco import (CLASSES, generate_split, shape_polygon,
                                                  size_histogram)


def _load(root, split='val'):
    with open(osp.join(root, 'annotations', f'instances_{split}2017.json')) as f:
        return json.load(f)


def test_format_and_invariants(tiny_coco):
    ids = set()
    for split in ('train', 'val'):
        coco = _load(tiny_coco, split)
        assert coco['info'] == {}  # pycocotools 2.0.9/2.0.10 need the key
        assert [c['name'] for c in coco['categories']] == list(CLASSES)
        images = {im['id']: im for im in coco['images']}
        assert len(images) == len(coco['images'])
        for im in coco['images']:
            assert osp.isfile(osp.join(tiny_coco, f'{split}2017', im['file_name']))
        for a in coco['annotations']:
            assert a['id'] not in ids, 'annotation ids must be unique across splits'
            ids.add(a['id'])
            im = images[a['image_id']]
            x, y, w, h = a['bbox']
            assert w >= 1 and h >= 1 and a['area'] > 0 and a['iscrowd'] == 0
            assert x >= 0 and y >= 0 and x + w <= im['width'] and y + h <= im['height']
            assert a['area'] <= w * h
            assert a['segmentation'], 'every object has a polygon'
            for poly in a['segmentation']:
                assert len(poly) >= 6 and len(poly) % 2 == 0
            # the polygons touch every side of the box (contours of the visible mask)
            pts = np.concatenate([np.asarray(p).reshape(-1, 2) for p in a['segmentation']])
            assert pts[:, 0].min() == x and pts[:, 1].min() == y
            assert pts[:, 0].max() == x + w - 1 and pts[:, 1].max() == y + h - 1


def test_sizes_span_coco_buckets(tmp_path):
    coco = generate_split(str(tmp_path), 'train', 40, seed=3)
    hist = size_histogram(coco)
    total = sum(hist.values())
    # COCO has ~41% small, ~34% medium, ~24% large objects; we want all three well present
    assert hist['small'] / total > 0.2 and hist['medium'] / total > 0.2 and hist['large'] / total > 0.1
    sides = [max(a['bbox'][2:]) for a in coco['annotations']]
    assert min(sides) <= 16 and max(sides) >= 150


def test_occlusion_is_bounded_and_annotated(tmp_path):
    """Occluded objects keep >= 50% of their area and are annotated by their visible part."""
    coco = generate_split(str(tmp_path), 'train', 30, seed=5, num_objects=(6, 9))
    from pycocotools import mask as mask_util
    images = {im['id']: im for im in coco['images']}
    by_image = {}
    for a in coco['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    occluded = 0
    for image_id, anns in by_image.items():
        im = images[image_id]
        masks = [mask_util.decode(mask_util.merge(mask_util.frPyObjects(
            a['segmentation'], im['height'], im['width']))).astype(bool) for a in anns]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                # visible parts never overlap: each pixel belongs to one object
                assert (masks[i] & masks[j]).sum() <= 0.02 * min(masks[i].sum(), masks[j].sum()) + 4
        # the area is the visible mask's
        for a, m in zip(anns, masks):
            assert abs(int(m.sum()) - a['area']) <= 0.25 * a['area'] + 8
        occluded += sum(len(a['segmentation']) > 1 for a in anns)
    assert occluded > 0, 'with many objects some visible masks are split by occluders'


def test_deterministic(tmp_path):
    a = generate_split(str(tmp_path / 'a'), 'val', 3, seed=7)
    b = generate_split(str(tmp_path / 'b'), 'val', 3, seed=7)
    c = generate_split(str(tmp_path / 'c'), 'val', 3, seed=8)
    assert a == b and a != c
    im_a = open(tmp_path / 'a' / 'val2017' / a['images'][0]['file_name'], 'rb').read()
    im_b = open(tmp_path / 'b' / 'val2017' / b['images'][0]['file_name'], 'rb').read()
    assert im_a == im_b
    # more images keep the first ones unchanged
    d = generate_split(str(tmp_path / 'd'), 'val', 5, seed=7)
    assert d['images'][:3] == a['images']


def test_shape_polygon_unknown():
    with pytest.raises(ValueError, match='unknown shape'):
        shape_polygon('hexagon', np.random.default_rng(0), 10, (5, 5))


def _dataset(root, split='val', with_mask=False):
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    return CocoDataset(
        data_root=root, ann_file=f'annotations/instances_{split}2017.json',
        data_prefix=dict(img=f'{split}2017/'), metainfo=dict(classes=CLASSES), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)])


def test_loads_through_mmdet_coco_dataset(tiny_coco):
    coco = _load(tiny_coco, 'val')
    ds = _dataset(tiny_coco, with_mask=True)
    assert len(ds) == len(coco['images'])
    n = 0
    for i in range(len(ds)):
        item = ds[i]
        n += len(item['gt_bboxes'])
        assert item['img'].shape[:2] == (item['height'], item['width'])
        assert len(item['gt_masks']) == len(item['gt_bboxes'])
    assert n == len(coco['annotations'])


def _predictions(root, mode):
    """Data samples as the model would produce them, from the ground truth."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from pycocotools import mask as mask_util
    coco = _load(root, 'val')
    rng = np.random.default_rng(0)
    samples = []
    for im in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([a['category_id'] - 1 for a in anns], np.int64)
        masks = np.stack([mask_util.decode(mask_util.merge(mask_util.frPyObjects(
            a['segmentation'], im['height'], im['width']))) for a in anns]).astype(bool) \
            if anns else np.zeros((0, im['height'], im['width']), bool)
        if mode == 'wrong':
            boxes = boxes + np.array([1, 1, 1, 1], np.float32) * rng.uniform(15, 30)
            labels = (labels + 1) % len(CLASSES)
            masks = np.roll(masks, 20, axis=2)
        pred = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.from_numpy(labels),
                            scores=torch.ones(len(anns)), masks=torch.from_numpy(masks))
        s = DetDataSample(metainfo=dict(img_id=im['id'], ori_shape=(im['height'], im['width'])))
        s.pred_instances = pred
        samples.append(s.to_dict())
    return samples


@pytest.mark.parametrize('mode', ['perfect', 'wrong'])
def test_coco_metric_scores(tiny_coco, mode):
    from mmdet.evaluation import CocoMetric
    metric = CocoMetric(ann_file=osp.join(tiny_coco, 'annotations/instances_val2017.json'),
                        metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, _predictions(tiny_coco, mode))
    res = metric.evaluate(size=len(_load(tiny_coco)['images']))
    if mode == 'perfect':
        assert res['coco/bbox_mAP'] == pytest.approx(1.0)
        assert res['coco/segm_mAP'] == pytest.approx(1.0)
    else:
        assert res['coco/bbox_mAP'] < 0.05 and res['coco/segm_mAP'] < 0.05
