"""tools/deployment/pytorch2onnx.py: each family exports with opset 17 and onnxruntime
matches PyTorch within 1e-4 at the export size and, dynamic, at other (odd) sizes."""
import importlib.util
import os.path as osp

import pytest

pytestmark = pytest.mark.slow

CASES = {
    'retinanet_fine': 'configs/quickstart/retinanet_r18_fine_synth-coco.py',
    'retinanet_asff': 'configs/quickstart/retinanet_r18_asff_synth-coco.py',
    'retinanet_fpn': 'configs/quickstart/retinanet_r18_fpn_synth-coco.py',
    'baff_skipnet': 'configs/quickstart/baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py',
    'skipnet': 'configs/quickstart/skipnet_mobilenet-v2_phase2_synth-cityscapes.py',
    'sem_fpn_fine': 'configs/quickstart/sem-fpn_r18_fine_synth-cityscapes.py',
}


def _tool():
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'deployment', 'pytorch2onnx.py')
    spec = importlib.util.spec_from_file_location('pytorch2onnx', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize('name', sorted(CASES))
def test_export_and_verify_dynamic(name, tmp_path, repo_root):
    import onnx
    import torch

    tool = _tool()
    torch.manual_seed(0)
    out = tmp_path / f'{name}.onnx'
    report = tool.run(tool.parse_args([f'{repo_root}/{CASES[name]}', '--shape', '128', '160', '--out',
                             str(out), '--dynamic', '--verify', '--verify-shape', '97', '131',
                             '--verify-shape', '160', '224']))
    assert set(report) == {'1x3x128x160', '1x3x97x131', '1x3x160x224'}
    assert all(0 <= v <= 1e-4 for v in report.values()), report
    proto = onnx.load(str(out))
    assert {n.domain for n in proto.graph.node} <= {'', 'ai.onnx'}  # no custom ops
    assert proto.opset_import[0].version == 17
    assert list(tmp_path.iterdir()) == [out]  # written atomically, no temp left


def test_autofocusformer_says_why_in_one_line(tmp_path, repo_root, capsys):
    rc = _tool().main([f'{repo_root}/configs/quickstart/mask2former-point_aff-mini_synth-cityscapes.py',
               '--shape', '128', '256', '--out', str(tmp_path / 'aff.onnx')])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert 'AutoFocusFormer is not exportable' in err and 'data-dependent' in err
    assert not (tmp_path / 'aff.onnx').exists()


# the lowest opset each family exports at (and the reason one below fails), found by a
# sweep over opsets 9-18: SDPA needs 14; BAFF's repeat_interleave with dynamic sizes 13;
# the in-graph padding (Pad with runtime sizes) 11
MIN_OPSET = {
    'retinanet_fine': (14, 'scaled_dot_product_attention'),
    'baff_skipnet': (13, 'repeat_interleave'),
    'retinanet_asff': (11, None),
}


@pytest.mark.parametrize('name', sorted(MIN_OPSET))
def test_minimum_opset(name, tmp_path, repo_root):
    from fusion_necks.deployment.onnx_export import ExportNotSupported
    tool = _tool()
    opset, op = MIN_OPSET[name]
    cfg = f'{repo_root}/{CASES[name]}'
    report = tool.run(tool.parse_args([cfg, '--shape', '64', '96', '--out', str(tmp_path / 'a.onnx'),
                                       '--dynamic', '--opset', str(opset), '--verify',
                                       '--verify-shape', '65', '97']))
    assert all(v <= 1e-4 for v in report.values()), report
    if op is not None:
        with pytest.raises(ExportNotSupported, match=f'opset {opset - 1}: .*{op}'):
            tool.run(tool.parse_args([cfg, '--shape', '64', '96', '--out',
                                      str(tmp_path / 'b.onnx'), '--dynamic', '--opset',
                                      str(opset - 1)]))
        assert not (tmp_path / 'b.onnx').exists()


def test_opset_below_11_is_refused_at_the_command_line(tmp_path, repo_root, capsys):
    with pytest.raises(SystemExit):
        _tool().parse_args([f'{repo_root}/{CASES["retinanet_asff"]}', '--shape', '64', '64',
                            '--out', str(tmp_path / 'a.onnx'), '--opset', '10'])
    assert '--opset must be >= 11' in capsys.readouterr().err
