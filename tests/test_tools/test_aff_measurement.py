"""AutoFocusFormer through the measurement tools: the FLOP breakdown against an analytic
count, and the plain-PyTorch callable path of get_flops.py / benchmark.py with mm* hidden."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


pytestmark = pytest.mark.usefixtures('single_thread')


def _breakdown_tool():
    spec = importlib.util.spec_from_file_location(
        'aff_flops_breakdown', osp.join(ROOT, 'tools', 'analysis', 'aff_flops_breakdown.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_factory_is_the_paper_classifier():
    from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet, autofocusformer_imagenet
    model = autofocusformer_imagenet('mini')
    assert isinstance(model, AutoFocusFormerNet) and model.num_classes == 1000
    assert [s.nbhd_size for s in model.stages] == [48, 48, 48, 49]
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(6.75e6, rel=5e-3)


def test_flop_breakdown_equals_an_analytic_count():
    """Mini at 96x96: 576/144/36/9 tokens; stages 1-2 local (M = 48), stages 3-4 global."""
    out = _breakdown_tool().main(['--arch', 'mini', '--shape', '96', '96',
                                  '--kwargs', '{"num_classes": 10}'])
    dims, depths, heads, r, f = (32, 128, 256, 384), (2, 2, 6, 2), (2, 4, 8, 16), 2, 5
    tokens = [576]
    for _ in range(3):
        tokens.append(int(tokens[-1] * 0.25))
    assert tokens == [576, 144, 36, 9]
    nbhd = [48, 48, 36, 9]  # 6 nearest clusters of 8, or all tokens (global)
    exp = dict.fromkeys(out['groups'], 0)
    exp['patch embedding'] = 48 * 48 * 9 * 3 * 16 + 24 * 24 * 9 * 16 * 32
    for i, (n, c, m, h, d) in enumerate(zip(tokens, dims, nbhd, heads, depths)):
        exp['block Linears'] += d * n * (4 * c * c + 2 * r * c * c)
        exp['position bias'] += d * n * m * f * h
        exp['neighbourhood attention'] += d * n * m * 2 * c  # q.k and p.v
        if i < 3:
            kept = tokens[i + 1]
            exp['merge Linears'] += n * c + kept * m * f * 4 + kept * 4 * c * dims[i + 1]
            exp['merge aggregation'] += kept * m * 4 * c
    exp['head'] = 384 * 10
    assert out['groups'] == exp
    assert out['total'] == sum(exp.values())
    assert out['module_hook_view'] == (out['total'] - exp['neighbourhood attention']
                                       - exp['merge aggregation'])


HIDE_MM = textwrap.dedent('''
    import importlib.machinery, runpy, sys
    hidden = ('mmdet', 'mmseg', 'mmcv', 'mmengine')
    real = importlib.machinery.PathFinder.find_spec
    def find_spec(name, path=None, target=None):
        if name.split('.')[0] in hidden:
            return None
        return real(name, path, target)
    importlib.machinery.PathFinder.find_spec = staticmethod(find_spec)
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(sys.argv[0], run_name='__main__')
    except SystemExit as e:  # the tools end with sys.exit(main())
        assert not e.code, e.code
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in hidden)
    assert not loaded, loaded
    print('NO-MM-OK')
    ''')


def _run_without_mm(args):
    env = dict(__import__('os').environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', HIDE_MM] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'NO-MM-OK' in proc.stdout
    return proc.stdout


def test_get_flops_callable_path_without_mm(tmp_path):
    out = _run_without_mm([
        'tools/analysis/get_flops.py',
        'fusion_necks.backbones.autofocusformer:autofocusformer_imagenet',
        '--inputs', '1,3,64,64', '--kwargs', '{"num_classes": 10}',
        '--json', str(tmp_path / 'f.json')])
    data = json.load(open(tmp_path / 'f.json'))
    assert set(data['flops']) == {'torch'}  # mmengine's counter is skipped, not an error
    assert data['flops']['torch']['total'] > 0 and 'torch' in out


def test_benchmark_callable_path_without_mm_reports_throughput(tmp_path):
    out = _run_without_mm([
        'tools/analysis/benchmark.py', 'fusion_necks.backbones.autofocusformer:AutoFocusFormerNet',
        '--inputs', '2,3,64,64', '--kwargs', '{"arch": "mini"}', '--runs', '2', '--warmup', '1',
        '--backward', '--json', str(tmp_path / 'b.json')])
    res = json.load(open(tmp_path / 'b.json'))['results'][0]
    assert res['batch'] == 2 and res['peak_mem_mib'] > 0
    assert res['images_per_s'] == pytest.approx(2e3 / res['median_ms'])
    assert 'images/s (batch 2' in out


def test_mmengine_counter_traces_aff_and_sees_no_kernel_work():
    """mmengine's fvcore-style tracer runs through AFF and, like fvcore on the official
    code, counts the Linears but not the attention/merge ops (opaque autograd functions)."""
    pytest.importorskip('mmengine.analysis')
    from fusion_necks.analysis.complexity import count_flops
    from fusion_necks.backbones.autofocusformer import autofocusformer_imagenet
    model = autofocusformer_imagenet('mini', num_classes=10).eval()
    fc = count_flops(model, (torch.randn(1, 3, 96, 96), ))
    mm, tc = fc['mmengine'], fc['torch']
    assert mm.total > 0, mm.unsupported
    assert mm.unsupported['prim::PythonOp._NbhdAttention'] == 12  # one per block
    assert mm.unsupported['prim::PythonOp._WeightedNeighbourSum'] == 3  # one per merge
    for i, depth in enumerate((2, 2, 6, 2)):
        for j in range(depth):
            attn = f'stages.{i}.blocks.{j}.attn'
            linears = sum(mm.by_module[f'{attn}.{k}'] for k in ('q', 'kv', 'proj', 'rel_pos_bias'))
            assert mm.by_module[attn] == linears  # the attention itself: 0
            assert tc.by_module[attn] > linears  # the torch counter sees its matmuls
            assert mm.by_module[f'{attn}.q'] == tc.by_module[f'{attn}.q']


def test_benchmark_backward_refuses_predict_mode_before_building():
    """``--backward`` needs tensor outputs: it defaults to ``--mode tensor``, and an explicit
    ``--mode predict`` on a whole model is refused up front (nothing is built)."""
    spec = importlib.util.spec_from_file_location(
        'aff_benchmark_tool', osp.join(ROOT, 'tools', 'analysis', 'benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit, match='--mode tensor'):
        tool.main(['configs/does-not-exist.py', '--shape', '64', '64', '--backward',
                   '--mode', 'predict'])
    assert tool.parse_args(['x.py', '--backward']).mode is None  # resolved in main()
