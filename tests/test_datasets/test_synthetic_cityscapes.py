"""The synthetic Cityscapes set: layout, label consistency, and the real metrics."""
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from fusion_necks.datasets.synthetic_cityscapes import (CLASSES, THING_TRAIN_IDS, TRAIN_IDS,
                                                        draw_scene, generate_split)


def _gt_files(root, split):
    return sorted(glob.glob(osp.join(root, 'gtFine', split, '*', '*_gtFine_labelTrainIds.png')))


def test_label_tables_match_cityscapesscripts():
    from cityscapesscripts.helpers.labels import trainId2label
    for train_id, (label_id, name) in TRAIN_IDS.items():
        assert trainId2label[train_id].id == label_id
        assert trainId2label[train_id].name == name
        assert trainId2label[train_id].hasInstances == (train_id in THING_TRAIN_IDS)
    from mmseg.datasets import CityscapesDataset
    assert tuple(CityscapesDataset.METAINFO['classes']) == CLASSES


def test_layout_and_consistent_maps(tiny_cityscapes):
    from cityscapesscripts.helpers.labels import id2label
    for split in ('train', 'val'):
        files = _gt_files(tiny_cityscapes, split)
        assert files
        for f in files:
            img = f.replace('gtFine', 'leftImg8bit', 1).replace('_gtFine_labelTrainIds', '_leftImg8bit')
            assert osp.isfile(img)
            train = cv2.imread(f, cv2.IMREAD_UNCHANGED)
            ids = cv2.imread(f.replace('labelTrainIds', 'labelIds'), cv2.IMREAD_UNCHANGED)
            inst = cv2.imread(f.replace('labelTrainIds', 'instanceIds'), cv2.IMREAD_UNCHANGED)
            assert cv2.imread(img).shape[:2] == train.shape == ids.shape == inst.shape
            # labelIds map to the trainIds through cityscapesscripts' table
            lut = np.full(256, 255, np.uint8)
            for i, label in id2label.items():
                if 0 <= i < 256:
                    lut[i] = label.trainId if 0 <= label.trainId < 255 else 255
            assert np.array_equal(lut[ids], train)
            # instance ids: id*1000+k for things, the label id for stuff
            things = inst >= 1000
            assert np.array_equal(inst[things] // 1000, ids[things].astype(np.int64))
            assert np.array_equal(inst[~things], ids[~things].astype(inst.dtype))
            thing_ids = {TRAIN_IDS[t][0] for t in THING_TRAIN_IDS}
            assert set(np.unique(ids[things]).tolist()) <= thing_ids


def test_every_class_occurs(tmp_path):
    seen = np.zeros(19, np.int64)
    for i in range(12):
        c = draw_scene(np.random.default_rng([0, 0, i]), 128, 256)
        seen += np.bincount(c.train[c.train < 19], minlength=19)
        assert (c.train == 255).mean() < 0.2  # little unlabelled area, as in Cityscapes
    missing = [CLASSES[i] for i in np.nonzero(seen == 0)[0]]
    assert not missing, f'classes never drawn: {missing}'
    # thin structures stay thin: poles cover far less than buildings
    assert seen[5] < seen[2] / 3


def test_deterministic(tmp_path):
    generate_split(str(tmp_path / 'a'), 'val', 2, seed=4, size=(64, 128))
    generate_split(str(tmp_path / 'b'), 'val', 2, seed=4, size=(64, 128))
    for fa in _gt_files(str(tmp_path / 'a'), 'val'):
        fb = fa.replace(str(tmp_path / 'a'), str(tmp_path / 'b'))
        assert open(fa, 'rb').read() == open(fb, 'rb').read()


def test_loads_through_mmseg_cityscapes_dataset(tiny_cityscapes):
    from mmseg.datasets import CityscapesDataset
    from mmseg.utils import register_all_modules
    register_all_modules()
    ds = CityscapesDataset(
        data_root=tiny_cityscapes,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')])
    assert len(ds) == 6
    item = ds[0]
    assert item['img'].shape == (128, 256, 3)
    assert item['gt_seg_map'].shape == (128, 256)
    assert set(np.unique(item['gt_seg_map'])) <= set(range(19)) | {255}


def _samples(root, mode):
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    out = []
    for f in _gt_files(root, 'val'):
        gt = cv2.imread(f, cv2.IMREAD_UNCHANGED).astype(np.int64)
        pred = gt.copy()
        if mode == 'wrong':
            pred = (pred + 7) % 19
        pred[pred == 255] = 0
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        s.set_metainfo(dict(img_path=f.replace('gtFine', 'leftImg8bit', 1).replace(
            '_gtFine_labelTrainIds', '_leftImg8bit'), seg_map_path=f))
        out.append(s.to_dict())
    return out


@pytest.mark.parametrize('mode', ['perfect', 'wrong'])
def test_iou_metric(tiny_cityscapes, mode):
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=CLASSES)
    samples = _samples(tiny_cityscapes, mode)
    metric.process({}, samples)
    res = metric.evaluate(len(samples))
    if mode == 'perfect':
        assert res['mIoU'] == pytest.approx(100.0)
    else:
        assert res['mIoU'] < 5


@pytest.mark.parametrize('mode', ['perfect', 'wrong'])
def test_cityscapes_metric(tiny_cityscapes, tmp_path, mode):
    """cityscapesscripts' evaluation runs on our labelIds/instanceIds files."""
    from mmseg.evaluation import CityscapesMetric

    from fusion_necks.compat import apply_runtime_patches
    apply_runtime_patches()  # what our tools do (np.in1d on numpy >= 2.4)
    metric = CityscapesMetric(output_dir=str(tmp_path / 'out'))
    metric.dataset_meta = dict(classes=CLASSES)
    samples = _samples(tiny_cityscapes, mode)
    metric.process({}, samples)
    res = metric.evaluate(len(samples))
    score = res['cityscapes/averageScoreCategories'] if 'cityscapes/averageScoreCategories' in res \
        else res['averageScoreCategories']
    if mode == 'perfect':
        assert score == pytest.approx(1.0)
    else:
        assert score < 0.3
