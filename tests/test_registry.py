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
        import fusion_necks.layers, fusion_necks.ops, fusion_necks.backbones
        import fusion_necks.registry as registry
        assert set(registry.registered) == {{'mmdet', 'mmseg'}} - set(hidden), registry.registered
        for name in hidden:
            assert name not in sys.modules, name
        print('OK', sorted(registry.registered))
        ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'OK' in proc.stdout


def test_core_imports_without_openmmlab():
    """``fusion_necks.ops/.layers/.backbones`` need only PyTorch: importing them loads no
    mmdet, mmseg, mmcv or mmengine module (they are installed here), and registration
    happens only when ``fusion_necks.registry`` is imported."""
    script = textwrap.dedent('''
        import sys, time
        import torch
        t = time.perf_counter()
        import fusion_necks, fusion_necks.ops, fusion_necks.layers, fusion_necks.backbones
        dt = time.perf_counter() - t
        mm = sorted({m.split('.')[0] for m in sys.modules
                     if m.split('.')[0] in ('mmdet', 'mmseg', 'mmcv', 'mmengine')})
        assert not mm, mm
        assert 'fusion_necks.registry' not in sys.modules
        import fusion_necks.registry
        assert {'mmdet', 'mmseg'} <= set(fusion_necks.registry.registered)
        print(f'OK {dt:.3f}')
        ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dt = float(proc.stdout.split('OK')[1])
    assert dt < 1.0, f'importing the core took {dt:.2f} s after torch'
