"""Fail early, and helpfully, when a config's dataset is not on disk.

Without this check a missing dataset surfaces deep inside a dataset class as
``FileNotFoundError: ... instances_train2017.json`` (or, for Cityscapes, as an
empty dataset and a ``ZeroDivisionError`` much later). :func:`check_data_paths`
names the missing path and says how to generate (synthetic sets) or obtain
(COCO, Cityscapes) the data.
"""
import os.path as osp
from typing import List, Sequence

from .config import dataset_cfgs


class DataNotFoundError(FileNotFoundError):
    """A dataset path named by the config does not exist."""


def _how_to_get(ds: dict, root: str) -> str:
    kind = str(ds.get('type', ''))
    if 'synthetic' in root.replace('\\', '/').lower():
        if 'Cityscapes' in kind:
            return ('generate it with:\n    python tools/dataset_converters/'
                    f'make_synthetic_cityscapes.py {root.rstrip("/")}')
        return ('generate it with:\n    python tools/dataset_converters/'
                f'make_synthetic_coco.py {root.rstrip("/")}')
    if 'Coco' in kind:
        return ('download COCO 2017 (train2017.zip, val2017.zip, '
                'annotations_trainval2017.zip) from https://cocodataset.org and unpack it as '
                f'{root}{{annotations,train2017,val2017}}, or point the config at your copy: '
                '--cfg-options train_dataloader.dataset.data_root=... '
                'val_dataloader.dataset.data_root=... val_evaluator.ann_file=...')
    if 'Cityscapes' in kind:
        return ('download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from '
                f'https://www.cityscapes-dataset.com into {root}, then create the '
                '*_labelTrainIds.png files with mmseg\'s converter: python '
                '<site-packages>/mmseg/.mim/tools/dataset_converters/cityscapes.py '
                f'{root} --nproc 8 (see README, "Real data")')
    return 'check data_root / ann_file / data_prefix in the config'


def _paths_of(ds: dict) -> List[str]:
    root = ds.get('data_root', '') or ''
    paths = []
    ann = ds.get('ann_file', '') or ''
    if ann:
        paths.append(ann if osp.isabs(ann) else osp.join(root, ann))
    prefix = ds.get('data_prefix', None) or {}
    for key in ('img', 'img_path', 'seg_map_path', 'seg'):
        sub = prefix.get(key, None)
        if sub:
            paths.append(sub if osp.isabs(sub) else osp.join(root, sub))
    if not paths and root:
        paths.append(root)
    return paths


def check_data_paths(cfg, phases: Sequence[str] = ('train', 'val')) -> None:
    """Raise :class:`DataNotFoundError` for the first missing dataset path.

    Args:
        phases: which of ``train``, ``val``, ``test`` will run (train.py checks train and
            val when validation is configured, test.py checks test).
    """
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader', None)
        if not loader:
            continue
        for ds in dataset_cfgs(loader):
            for path in _paths_of(ds):
                if not osp.exists(path):
                    raise DataNotFoundError(
                        f'{phase}_dataloader: {path} does not exist '
                        f'({ds.get("type", "dataset")}, data_root={ds.get("data_root", "")!r}).\n'
                        f'To get the data, {_how_to_get(ds, ds.get("data_root", "") or "")}')
        evaluator = cfg.get(f'{phase}_evaluator', None)
        evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
        for ev in evaluators:
            if isinstance(ev, dict) and ev.get('ann_file') and not osp.exists(ev['ann_file']):
                raise DataNotFoundError(
                    f'{phase}_evaluator ({ev.get("type")}): ann_file {ev["ann_file"]} does not exist; '
                    'set it to the annotation file of the evaluated split, e.g. --cfg-options '
                    f'{phase}_evaluator.ann_file=PATH')
