"""benchmark.py --backend torch onnxruntime: both backends time the same network (the
outputs agree on the benchmark input), alternating, with the ratios it prints."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SKIPNET = 'configs/quickstart/skipnet_mobilenet-v2_phase2_synth-cityscapes.py'
BAFF = 'configs/quickstart/baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py'


def test_two_configs_two_backends(tmp_path, repo_root):
    out = subprocess.run(
        [sys.executable, 'tools/analysis/benchmark.py', SKIPNET, BAFF, '--shape', '64', '96',
         '--backend', 'torch', 'onnxruntime', '--runs', '2', '--warmup', '1', '--threads', '1',
         '--onnx-dir', str(tmp_path / 'onnx'), '--json', str(tmp_path / 'b.json')],
        cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.load(open(tmp_path / 'b.json'))
    assert res['backends'] == ['torch', 'onnxruntime'] and res['mode'] == 'tensor'
    rows = {(r['target'], r['backend']): r for r in res['results']}
    names = ('skipnet_mobilenet-v2_phase2_synth-cityscapes',
             'baff-skipnet_mobilenet-v2_phase2_synth-cityscapes')
    assert set(rows) == {(n, b) for n in names for b in ('torch', 'onnxruntime')}
    for n in names:
        assert rows[n, 'torch']['peak_mem_mib'] > 0
        assert rows[n, 'onnxruntime']['peak_mem_mib'] is None  # not seen by the allocator
        assert len(rows[n, 'onnxruntime']['samples_ms']) == 2
        assert (tmp_path / 'onnx' / f'{n}.onnx').is_file()
    checks = [line for line in out.stdout.splitlines() if line.startswith('check')]
    assert len(checks) == 2
    assert all(float(c.rsplit(' ', 1)[1]) <= 1e-4 for c in checks), checks
    ratio = rows[names[1], 'onnxruntime']['median_ms'] / rows[names[0], 'onnxruntime']['median_ms']
    assert f'under onnxruntime: {names[1]} {ratio:.3f}' in out.stdout
    assert 'onnxruntime / torch:' in out.stdout


@pytest.mark.parametrize('extra, msg', [
    (['fusion_necks.layers.baff:BAFF', '--inputs', '1,8,8,8'], 'config targets only'),
    ([SKIPNET, '--backward'], 'tensor mode'),
    ([SKIPNET, '--part', 'backbone'], 'tensor mode'),
])
def test_bad_combinations_are_refused(extra, msg, repo_root):
    out = subprocess.run([sys.executable, 'tools/analysis/benchmark.py', *extra, '--shape', '64',
                          '64', '--backend', 'onnxruntime'], cwd=repo_root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and msg in out.stderr, out.stderr[-2000:]
