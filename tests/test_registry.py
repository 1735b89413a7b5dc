"""fusion_necks.registry: both frameworks, no collisions, importable without either."""
import subprocess
import sys
import textwrap

import pytest

from fusion_necks import registry


def test_every_entry_is_registered_in_its_framework():
    done = registry.register_all_modules()
    assert set(done) == {'mmdet', 'mmseg'}
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for framework, models in (('mmdet', DET), ('mmseg', SEG)):
        names = [n for n, _ in registry.FRAMEWORKS[framework]]
        assert done[framework] == names
        assert len(set(names)) == len(names), f'duplicate names in the {framework} table'
        for name, target in registry.FRAMEWORKS[framework]:
            assert models.module_dict[name] is registry.load_target(target)
    # registering again is a no-op
    assert registry.register_all_modules() == done


def test_collision_with_upstream_raises(monkeypatch):
    monkeypatch.setattr(registry, 'MMDET_MODULES', [('FPN', 'torch.nn:Identity')])
    monkeypatch.setitem(registry.FRAMEWORKS, 'mmdet', registry.MMDET_MODULES)
    with pytest.raises(KeyError, match="'FPN' is already registered in mmdet.registry.MODELS"):
        registry.register_framework('mmdet')


def test_bad_target_and_framework():
    with pytest.raises(ValueError, match="'pkg.module:ClassName'"):
        registry.load_target('torch.nn.Identity')
    with pytest.raises(ValueError, match='framework must be one of'):
        registry.register_framework('mmpose')


@pytest.mark.parametrize('hidden', [('mmseg',), ('mmdet',), ('mmdet', 'mmseg', 'mmcv', 'mmengine')])
def test_import_without_a_framework(hidden):
    """A user with only mmdet, only mmseg, or only torch can import the package."""
    script = textwrap.dedent(f'''
        import importlib.machinery, sys
        hidden = {hidden!r}
        real = importlib.machinery.PathFinder.find_spec
        def find_spec(name, path=None, target=None):
            if name.split('.')[0] in hidden:
                return None
            return real(name, path, target)
        importlib.machinery.PathFinder.find_spec = staticmethod(find_spec)
        import fusion_necks
        assert set(fusion_necks.registered) == {{'mmdet', 'mmseg'}} - set(hidden), fusion_necks.registered
        import fusion_necks.layers, fusion_necks.ops, fusion_necks.backbones
        for name in hidden:
            assert name not in sys.modules, name
        print('OK', sorted(fusion_necks.registered))
        ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'OK' in proc.stdout
