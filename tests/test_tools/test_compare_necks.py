"""tools/analysis/compare_necks.py: a 2-iteration paired run of two configs, two seeds."""
import json
import os.path as osp
import runpy

import pytest

pytestmark = pytest.mark.slow


def test_compare_two_configs_two_seeds(tmp_path, repo_root, tool, det_config, capsys):
    data_root = str(tmp_path / 'synthetic_coco') + '/'   # missing: generated once, up front
    fpn = det_config(tmp_path, data_root, repo_root, name='tiny_fpn.py')
    fine = det_config(tmp_path, data_root, repo_root, name='tiny_fine.py',
                      base='retinanet_r18_fine_synth-coco.py')
    work = tmp_path / 'cmp'
    proc = tool(['tools/analysis/compare_necks.py', fpn, fine, '--seeds', '0', '1',
                 '--jobs', '2', '--iters', '2', '--num-train', '8', '--num-val', '4',
                 '--num-vis', '1', '--fusion-stats', '1', '--work-dir', str(work)])
    table = json.load(open(work / 'comparison.json'))
    assert table['seeds'] == [0, 1]
    assert table['metrics'] == ['coco/bbox_mAP', 'coco/bbox_mAP_s']
    for cfg, stem in ((fpn, 'tiny_fpn'), (fine, 'tiny_fine')):
        vals = table['configs'][cfg]['metrics']['coco/bbox_mAP']['values']
        for seed, v in zip((0, 1), vals):
            summary = json.load(open(work / stem / f'seed{seed}' / 'demo_summary.json'))
            assert summary['metrics']['coco/bbox_mAP'] == v    # the run's own metric
            assert summary['checkpoint'].endswith('iter_2.pth')
    d = table['differences'][fine]['coco/bbox_mAP']
    a = table['configs'][fpn]['metrics']['coco/bbox_mAP']['values']
    b = table['configs'][fine]['metrics']['coco/bbox_mAP']['values']
    assert d['mean_diff'] == pytest.approx(sum(b) / 2 - sum(a) / 2)
    assert d['ci_low'] <= d['mean_diff'] <= d['ci_high']
    assert d['verdict'] in ('separated (better)', 'separated (worse)', 'not separated')
    md = (work / 'comparison.md').read_text()
    assert 'verdict' in md
    # FINE's modulation was measured at both iterations; the FPN baseline has no recorder
    assert table['configs'][fpn]['fusion_stats'] == {}
    stats = table['configs'][fine]['fusion_stats']
    m_keys = [k for k in stats if k.endswith('/M_abs')]
    assert len(m_keys) == 2, stats   # the two FINE steps of the quickstart FINEFPN
    for k in m_keys:
        assert [it for it, _ in stats[k]] == [1, 2]
        # zero-initialised modulation (identity at init), moved by the first update
        assert stats[k][0][1] == 0 and stats[k][1][1] > 0
    assert 'Fusion statistics of `tiny_fine`' in md
    assert 'paired difference' in proc.stdout
    # every run was trained with its own seed
    for s in (0, 1):
        log = open(osp.join(work, 'tiny_fpn', f'seed{s}', 'compare.log')).read()
        assert f'seed={s}' in log, log[-2000:]
    # later calls run in this process (the command line was exercised above; a second
    # interpreter start-up and import of mmdet per check would only cost time)
    main = runpy.run_path(osp.join(repo_root, 'tools', 'analysis', 'compare_necks.py'))['main']
    # a second call with the same settings reuses the finished runs and gives the same table
    same = [fpn, fine, '--seeds', '0', '1', '--jobs', '2', '--iters', '2', '--num-train', '8',
            '--num-val', '4', '--num-vis', '1', '--fusion-stats', '1', '--work-dir', str(work)]
    capsys.readouterr()
    assert main(same) == 0
    assert 'done in' not in capsys.readouterr().out
    assert json.load(open(work / 'comparison.json'))['differences'] == table['differences']
    record = json.load(open(work / 'tiny_fpn' / 'seed0' / 'compare_run.json'))
    assert record['threads'] >= 1 and '--iters' in record['command']
    import torch
    assert record['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    # a run made on a CPU with other kernels (AVX2 vs AVX-512 give other float results)
    rec_path = work / 'tiny_fine' / 'seed1' / 'compare_run.json'
    saved = rec_path.read_text()
    rec_path.write_text(json.dumps(dict(json.loads(saved), cpu_capability='SOME_OTHER_ISA')))
    with pytest.raises(SystemExit) as exc:
        main(same)
    assert 'cpu_capability' in str(exc.value.code) and 'SOME_OTHER_ISA' in str(exc.value.code)
    rec_path.write_text(saved)
    # other settings (here the training length) do not silently reuse them
    other = list(same)
    other[other.index('--iters') + 1] = '3'
    with pytest.raises(SystemExit) as exc:
        main(other)
    msg = str(exc.value.code)
    assert 'made with other settings' in msg and '--rerun-stale' in msg
    assert "'2'" in msg and "'3'" in msg   # what differs, named
    # an edited config is caught through the resolved config's hash
    with open(fpn, 'a') as f:
        f.write('\ntrain_cfg = dict(val_interval=1000)\n')
    with pytest.raises(SystemExit) as exc:
        main(same)
    msg = str(exc.value.code)
    assert 'the resolved config changed' in msg
    assert 'tiny_fpn' in msg and 'tiny_fine' not in msg

def test_compare_refuses_one_config(tmp_path, repo_root, tool):
    cfg = osp.join(repo_root, 'configs/quickstart/retinanet_r18_fpn_synth-coco.py')
    proc = tool(['tools/analysis/compare_necks.py', cfg, '--seeds', '0', '1'], check=False)
    assert proc.returncode != 0 and 'at least two configs' in proc.stderr
