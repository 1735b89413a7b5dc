"""model-index.yml and configs/*/metafile.yml (OpenMMLab model-index format): the index
imports every metafile, every listed config exists and loads, every config of those
directories is listed exactly once, names are unique, and the configs a model's metadata
points to (baseline, parent of an ablation) exist."""
import glob
import os.path as osp

import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHOD_DIRS = ('fine', 'asff', 'baff_skipnet', 'autofocusformer', 'fpn')
# metadata keys that name other configs of the repository
REFERENCE_KEYS = ('Baseline', 'Baseline of', 'Ablation of', 'Variant of')


def _read(path):
    with open(osp.join(ROOT, path)) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def index():
    return _read('model-index.yml')


@pytest.fixture(scope='module')
def metafiles(index):
    return {path: _read(path) for path in index['Import']}


@pytest.fixture(scope='module')
def models(metafiles):
    return [(path, m) for path, meta in metafiles.items() for m in meta['Models']]


def test_the_index_imports_every_metafile(index):
    on_disk = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '*',
                                                                      'metafile.yml')))
    assert sorted(index['Import']) == on_disk
    assert len(set(index['Import'])) == len(index['Import'])
    assert {f'configs/{d}/metafile.yml' for d in METHOD_DIRS} <= set(on_disk)


def test_collections(metafiles):
    names = [c['Name'] for meta in metafiles.values() for c in meta['Collections']]
    assert len(names) == len(set(names)), names
    for path, meta in metafiles.items():
        for c in meta['Collections']:
            assert c['Paper']['Title'] and c['Paper']['URL'].startswith('https://'), (path, c)
            assert osp.isfile(osp.join(ROOT, c['README'])), (path, c['README'])
        used = {m['In Collection'] for m in meta['Models']}
        assert used == {c['Name'] for c in meta['Collections']}, path


def test_model_names_are_unique_and_name_their_config(models):
    names = [m['Name'] for _, m in models]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for path, m in models:
        assert m['Config'] == f'{osp.dirname(path)}/{m["Name"]}.py', (path, m['Name'])
        assert m['Metadata']['Training Data'] in ('COCO', 'Cityscapes', 'ADE20K'), m['Name']
        assert 'Weights' not in m, m['Name']   # no trained weights are distributed


def test_every_config_is_listed_in_exactly_one_metafile(metafiles, models):
    listed = [m['Config'] for _, m in models]
    dirs = {osp.dirname(path) for path in metafiles}
    on_disk = sorted(osp.relpath(p, ROOT) for d in dirs
                     for p in glob.glob(osp.join(ROOT, d, '*.py')))
    assert sorted(listed) == on_disk


def test_referenced_configs_exist(models):
    for _, m in models:
        for key in REFERENCE_KEYS:
            refs = m['Metadata'].get(key, [])
            for ref in [refs] if isinstance(refs, str) else refs:
                assert osp.isfile(osp.join(ROOT, ref)), (m['Name'], key, ref)


def test_every_listed_config_loads(models):
    from mmengine.config import Config
    for _, m in models:
        cfg = Config.fromfile(osp.join(ROOT, m['Config']))
        assert cfg.model.type, m['Name']
        loop = cfg.train_cfg
        schedule = loop.max_epochs if loop.get('type') == 'EpochBasedTrainLoop' else loop.max_iters
        assert m['Metadata'].get('Epochs', m['Metadata'].get('Iterations')) == schedule, m['Name']


def test_the_suites_memoized_config_index_matches_mmengine():
    """tests/conftest.py parses mmdet's/mmseg's metafile index once per process; it must
    resolve every external base our configs name exactly as mmengine does."""
    import re

    from mmengine.config import utils as cfg_utils
    from mmengine.utils import get_installed_path
    memoized = cfg_utils._get_cfg_metainfo
    assert getattr(memoized, '_fusion_necks_memoized', False)
    names = set()
    for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        names |= set(re.findall(r"'(mm(?:det|seg))::([^']+)\.py'", open(path).read()))
    assert len(names) >= 10, names
    # mmengine's own lookup costs ~0.2 s a name: the metafile configs and two base configs
    bases = sorted(n for n in names if n[1].startswith('_base_'))
    for package, name in sorted(set(names) - set(bases))[::3] + bases[:2]:
        pkg = get_installed_path(package)
        try:
            expected = memoized.original(pkg, name)
        except ValueError:   # a base config (no metafile entry): both must refuse it
            with pytest.raises(ValueError, match='Expected configs'):
                memoized(pkg, name)
            continue
        assert memoized(pkg, name) == expected, (package, name)
