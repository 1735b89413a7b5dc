"""tools/analysis/benchmark_ops.py: op-level A/B against the kept reference."""
import importlib
import importlib.util
import json
import os.path as osp

import pytest
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'benchmark_ops', osp.join(ROOT, 'tools', 'analysis', 'benchmark_ops.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synthetic_knn_case_against_the_reference(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / 'ab.json'
    assert tool.main(['knn:900x64:5', '--compare-reference', '--runs', '2', '--warmup', '1',
                      '--threads', '1', '--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'check: identical indices and distances on all 1 calls' in text
    assert 'speed-up over the reference' in text
    case = json.load(open(out))['cases']['knn:900x64:5']
    assert case['calls'] == ['(1, 900, 2) -> (1, 64, 2), k=5']
    assert [r['name'] for r in case['results']] == ['ops.knn', 'reference knn_v1']
    assert all(len(r['samples_ms']) == 2 for r in case['results'])


def test_recording_replays_the_real_calls_and_restores_knn():
    tool = _tool()
    from fusion_necks.backbones.autofocusformer import AutoFocusFormerNet
    stage = importlib.import_module('fusion_necks.backbones.aff_stage')
    before = stage.knn
    torch.manual_seed(0)
    model = AutoFocusFormerNet(arch='mini').eval()
    with torch.no_grad():
        calls = tool.record_knn_calls(lambda: model(torch.randn(1, 3, 64, 64)))
    assert stage.knn is before
    # stage 1 clusters the 16 x 16 stride-4 tokens first: queries are those tokens
    (q, db, k), _ = calls[0]
    assert q.shape == (1, 256, 2) and db.shape[0] == 1 and k >= 1
    assert len(calls) >= 4  # one neighbourhood search per stage at least


@pytest.mark.parametrize('argv, msg', [(['knn:12:3'], "'knn:NQxND:K'"),
                                       (['fine'], 'unknown case'), ([], 'at least one case')])
def test_bad_cases(argv, msg, capsys):
    with pytest.raises(SystemExit) as e:
        _tool().main(argv)
    assert msg in str(e.value) + capsys.readouterr().err


def test_list(capsys):
    assert _tool().main(['--list']) == 0
    assert 'knn-aff-tiny-m2f-1024x2048' in capsys.readouterr().out


def test_fine_training_step_against_the_previous_fine(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / 'fine.json'
    assert tool.main(['fine-r50-train', '--compare-reference', '--runs', '1', '--warmup', '0',
                      '--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'check: input and parameter gradients within' in text
    case = json.load(open(out))['cases']['fine-r50-train']
    assert [r['name'] for r in case['results']] == ['FINE (paper: AATS, softmax)',
                                                    'reference FINE v1']
    assert len(case['calls']) == 2  # both R-50 stages


def test_neighbourhood_attention_case_against_the_general_op(tmp_path, capsys):
    """The per-cluster schedule against the per-query op on AFF-Tiny's real block calls
    (a small image), and the recording leaves the backbone's op in place."""
    from fusion_necks.backbones import aff_attention
    before = aff_attention.nbhd_attention
    tool = _tool()
    out = tmp_path / 'nbhd.json'
    assert tool.main(['nbhd-aff-tiny-128x256', '--compare-reference', '--runs', '1',
                      '--warmup', '0', '--threads', '1', '--json', str(out)]) == 0
    assert aff_attention.nbhd_attention is before
    text = capsys.readouterr().out
    assert 'of the general op (relative to the max)' in text
    case = json.load(open(out))['cases']['nbhd-aff-tiny-128x256']
    assert case['calls'] and all('cluster_size=8' in c for c in case['calls'])
    assert [r['name'] for r in case['results']] == ['nbhd_attention, per-cluster gather',
                                                    'nbhd_attention, per-query gather']


def test_fine_forward_against_the_v2_block_ops(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / 'fine2.json'
    assert tool.main(['fine-r50-k1', '--compare-reference', '--fine-reference', 'v2',
                      '--runs', '1', '--warmup', '0', '--json', str(out)]) == 0
    assert 'check: outputs within' in capsys.readouterr().out
    case = json.load(open(out))['cases']['fine-r50-k1']
    assert [r['name'] for r in case['results']] == ['FINE (paper: AATS, softmax)',
                                                    'reference FINE v2']
