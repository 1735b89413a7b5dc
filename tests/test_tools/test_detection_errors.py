"""tools/analysis/detection_errors.py (FINE paper, Table 5) on hand-made results whose
TP/FP/FN are known, written through mmdet's own DumpDetResults as tools/test.py does."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'detection_errors', osp.join(ROOT, 'tools', 'analysis', 'detection_errors.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


de = _tool()

# categories in file order: label 0 -> id 3 ('cat'), label 1 -> id 1 ('dog'), 2 -> id 7
CATEGORIES = [dict(id=3, name='cat'), dict(id=1, name='dog'), dict(id=7, name='bird')]


def ann(i, img, cat, x, y, w, h, crowd=0):
    return dict(id=i, image_id=img, category_id=cat, bbox=[x, y, w, h], area=w * h,
                iscrowd=crowd)


GT = dict(
    info={}, categories=CATEGORIES,
    images=[dict(id=10, file_name='a.jpg', height=100, width=100),
            dict(id=11, file_name='b.jpg', height=100, width=100),
            dict(id=12, file_name='c.jpg', height=100, width=100)],   # no detections
    annotations=[
        ann(1, 10, 3, 0, 0, 20, 20),      # cat A: matched by det 0 (TP); det 1 duplicate
        ann(2, 10, 1, 50, 50, 20, 20),    # dog B: det 2 has the wrong class -> FN
        ann(3, 10, 7, 0, 60, 30, 30),     # bird C: det 3 IoU < 0.5 -> FN, det 3 FP
        ann(4, 11, 3, 10, 10, 40, 40),    # cat D: matched by the highest-scoring det -> TP
        ann(5, 11, 3, 55, 10, 40, 40),    # cat E: det 5 below score thr -> FN
        ann(6, 11, 1, 0, 60, 40, 40, crowd=1),   # crowd dog: det 7 on it is ignored
        ann(7, 12, 7, 5, 5, 10, 10),      # bird F: image without detections -> FN
    ])
# label: 0 cat, 1 dog, 2 bird
DETS = {
    10: [([0, 0, 20, 20], 0.9, 0),       # TP (A)
         ([1, 1, 21, 21], 0.8, 0),       # FP (duplicate of A)
         ([50, 50, 70, 70], 0.95, 0),    # FP (cat on dog B)
         ([0, 60, 12, 90], 0.7, 2)],     # FP (IoU 0.4 with C)
    11: [([10, 10, 50, 50], 0.6, 0),     # FP: D (IoU 1) was already taken by det 6
         ([55, 10, 95, 50], 0.3, 0),     # below score threshold: ignored
         ([12, 12, 52, 52], 0.99, 0),    # highest score: takes D first (IoU 0.82) -> TP
         ([5, 65, 25, 85], 0.9, 1)],     # dog inside the crowd region: ignored
}
# image 10: TP 1, FP 3, FN 2 (B, C); image 11: TP 1 (det 6 -> D), FP 1, FN 1 (E), the det
# on the crowd is ignored; image 12: FN 1 (F).
EXPECTED = dict(tp=2, fp=4, fn=4)


def write_results(tmp_path, dets=DETS):
    """A results .pkl exactly as tools/test.py --out writes it (mmdet DumpDetResults)."""
    from mmdet.evaluation import DumpDetResults
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    out = str(tmp_path / 'results.pkl')
    metric = DumpDetResults(out_file_path=out)
    samples = []
    for img_id, rows in dets.items():
        s = DetDataSample(metainfo=dict(img_id=img_id, img_path=f'{img_id}.jpg',
                                        ori_shape=(100, 100)))
        s.pred_instances = InstanceData(
            bboxes=torch.tensor([r[0] for r in rows], dtype=torch.float32),
            scores=torch.tensor([r[1] for r in rows]),
            labels=torch.tensor([r[2] for r in rows]))
        samples.append(s.to_dict())
    metric.process({}, samples)
    metric.compute_metrics(metric.results)
    return out


@pytest.fixture
def files(tmp_path):
    gt = tmp_path / 'gt.json'
    gt.write_text(json.dumps(GT))
    return str(gt), write_results(tmp_path)


def test_known_counts(files):
    gt, pkl = files
    r = de.evaluate(de.load_results(pkl), gt)
    assert (r['tp'], r['fp'], r['fn'], r['images']) == (2, 4, 4, 3)
    assert r['precision'] == pytest.approx(2 / 6)
    assert r['recall'] == pytest.approx(2 / 6)
    assert r['f1'] == pytest.approx(2 / 6)


def test_thresholds_and_class_agnostic(files):
    gt, pkl = files
    res = de.load_results(pkl)
    # score 0.25 admits det 5 on E (IoU 1) -> one more TP, one FN less
    r = de.evaluate(res, gt, score_thr=0.25)
    assert (r['tp'], r['fp'], r['fn']) == (3, 4, 3)
    # IoU 0.35 lets det 3 (IoU 0.4) match bird C
    r = de.evaluate(res, gt, iou_thr=0.35)
    assert (r['tp'], r['fp'], r['fn']) == (3, 3, 3)
    # class-agnostic: the cat on dog B matches B
    r = de.evaluate(res, gt, class_agnostic=True)
    assert (r['tp'], r['fp'], r['fn']) == (3, 3, 3)


def test_label_to_category_follows_the_json_order(tmp_path):
    """label i -> i-th category in file order (as mmdet's CocoMetric), not sorted ids."""
    gt = tmp_path / 'gt.json'
    gt.write_text(json.dumps(GT))
    pkl = write_results(tmp_path, {12: [([5, 5, 15, 15], 0.9, 2)]})     # label 2 = bird id 7
    r = de.evaluate(de.load_results(pkl), str(gt))
    assert (r['tp'], r['fp'], r['fn']) == (1, 0, 5)      # A-E missed; the crowd never counts
    pkl = write_results(tmp_path, {12: [([5, 5, 15, 15], 0.9, 0)]})     # label 0 = cat
    r = de.evaluate(de.load_results(pkl), str(gt), classes=['bird'])    # 'bird' only: label 0
    assert (r['tp'], r['fp'], r['fn']) == (1, 0, 1)   # only birds count: F matched, C missed
    with pytest.raises(ValueError, match='categories'):
        de.evaluate(de.load_results(write_results(tmp_path, {12: [([0, 0, 1, 1], .9, 5)]})),
                    str(gt))


def test_box_iou_against_hand_values():
    a = np.array([[0, 0, 10, 10.]])
    b = np.array([[5, 0, 15, 10.], [0, 0, 10, 10.], [20, 20, 30, 30.]])
    np.testing.assert_allclose(de.box_iou(a, b), [[50 / 150, 1.0, 0.0]])
    np.testing.assert_allclose(de.box_ioa(a, b), [[0.5, 1.0, 0.0]])


def test_improvement_reproduces_table5():
    wo = de.summarise(23833, 21557, 12502, 5000)
    w = de.summarise(24186, 19417, 12149, 5000)
    assert (round(wo['precision'], 3), round(wo['recall'], 3), round(wo['f1'], 3)) == \
        (0.525, 0.656, 0.583)
    assert (round(w['precision'], 3), round(w['recall'], 3), round(w['f1'], 3)) == \
        (0.555, 0.666, 0.605)
    imp = de.improvement(wo, w)
    assert [round(imp[k], 2) for k in ('tp', 'fp', 'fn')] == [1.48, -9.93, -2.82]
    # the paper's rate changes are relative changes of the rates rounded to 3 digits
    rounded = [{k: round(v, 3) if k in ('precision', 'recall', 'f1') else v
                for k, v in r.items()} for r in (wo, w)]
    imp = de.improvement(*rounded)
    assert [round(imp[k], 2) for k in ('precision', 'recall', 'f1')] == [5.71, 1.52, 3.77]


def test_cli_table_and_json(files, tmp_path, capsys):
    gt, pkl = files
    out = str(tmp_path / 'errors.json')
    assert de.main([gt, pkl, pkl, '--names', 'FPN', 'FINE', '--out', out]) == 0
    text = capsys.readouterr().out
    assert 'Improvement' in text and 'FPN' in text and 'FINE' in text
    data = json.load(open(out))
    assert data['rows']['FINE']['tp'] == 2 and data['improvement']['fp'] == 0.0
