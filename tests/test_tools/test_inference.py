"""The OpenMMLab inference entry points with our configs and checkpoints from tools/train.py:
mmdet's DetInferencer, mmseg's MMSegInferencer, tools/image_demo.py, and
tools/analysis/browse_dataset.py, with the bad inputs users give them."""
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch

from tests.conftest import tiny_det_config

pytestmark = pytest.mark.slow

DET = {'fine': 'retinanet_r18_fine_synth-coco.py', 'asff': 'retinanet_r18_asff_synth-coco.py'}
SEG = {'baff': 'baff-skipnet_mobilenet-v2_phase2_synth-cityscapes.py',
       'aff': 'mask2former-point_aff-mini_synth-cityscapes.py'}


def _seg_opts(data_root, tmp):
    opts = [f'{k}.dataset.data_root={data_root}'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    return opts + ['train_cfg.max_iters=1', 'train_cfg.val_interval=100',
                   'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=1',
                   'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                   'load_from=None', f'val_evaluator.1.output_dir={tmp}/cs']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_coco, tiny_cityscapes, repo_root, tool):
    """One training iteration of each config through tools/train.py: name -> (config, ckpt)."""
    out = {}
    for name, base in DET.items():
        tmp = tmp_path_factory.mktemp(name)
        cfg = tiny_det_config(tmp, tiny_coco, repo_root, name=f'tiny_{name}.py', base=base,
                              extra='train_cfg = dict(max_iters=1, val_interval=100)\n'
                                    'default_hooks = dict(checkpoint=dict(interval=1))\n')
        tool(['tools/train.py', cfg, '--work-dir', str(tmp / 'work')])
        out[name] = (cfg, str(tmp / 'work' / 'iter_1.pth'))
    for name, base in SEG.items():
        tmp = tmp_path_factory.mktemp(name)
        cfg = osp.join(repo_root, 'configs', 'quickstart', base)
        tool(['tools/train.py', cfg, '--work-dir', str(tmp / 'work'), '--cfg-options',
              *_seg_opts(tiny_cityscapes, tmp)])
        out[name] = (cfg, str(tmp / 'work' / 'iter_1.pth'))
    return out


@pytest.fixture(scope='module')
def images(tmp_path_factory, tiny_coco, tiny_cityscapes):
    import glob

    import mmcv
    tmp = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    gray = str(tmp / 'gray_17x23.png')
    mmcv.imwrite(rng.integers(0, 255, (17, 23), dtype=np.uint8), gray)
    junk = tmp / 'not_an_image.png'
    junk.write_bytes(b'not a png')
    return dict(det=sorted(glob.glob(tiny_coco + 'val2017/*.jpg'))[0],
                seg=sorted(glob.glob(tiny_cityscapes + 'leftImg8bit/val/*/*.png'))[0],
                gray=gray, junk=str(junk))


def _assert_loaded(model, ckpt):
    """The inferencer's model holds the checkpoint's weights (not a random init)."""
    sd = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    got = model.state_dict()
    assert set(sd) == set(got)
    for k, v in sd.items():
        torch.testing.assert_close(got[k].cpu(), v, rtol=0, atol=0, msg=k)


def test_train_checkpoints_load_weights_only(trained):
    for name, (_, ckpt) in trained.items():
        assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) == [], name


@pytest.mark.parametrize('name', sorted(DET))
def test_det_inferencer(trained, images, name):
    import mmcv
    from mmdet.apis import DetInferencer
    cfg, ckpt = trained[name]
    inferencer = DetInferencer(model=cfg, weights=ckpt, device='cpu')
    _assert_loaded(inferencer.model, ckpt)
    img = mmcv.imread(images['det'])
    res = inferencer(img, return_vis=True, no_save_vis=True, pred_score_thr=0.0)
    pred = res['predictions'][0]
    assert set(pred) >= {'bboxes', 'scores', 'labels'}
    assert len(pred['bboxes']) > 0  # score_thr=0.0 in the tiny config: boxes come out
    boxes = np.asarray(pred['bboxes'])
    assert boxes.shape[1] == 4 and (boxes[:, 2] >= boxes[:, 0]).all()
    assert res['visualization'][0].shape == img.shape


@pytest.mark.parametrize('name', sorted(SEG))
def test_seg_inferencer(trained, images, name):
    import mmcv
    from mmseg.apis import MMSegInferencer
    cfg, ckpt = trained[name]
    inferencer = MMSegInferencer(model=cfg, weights=ckpt, device='cpu')
    _assert_loaded(inferencer.model, ckpt)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in inferencer.model.modules())
    img = mmcv.imread(images['seg'])
    res = inferencer(img, return_vis=True)
    pred = np.asarray(res['predictions'])
    assert pred.shape == img.shape[:2]
    assert pred.min() >= 0 and pred.max() < 19
    assert res['visualization'].shape == img.shape


@pytest.mark.parametrize('name,kind', [('fine', 'det'), ('baff', 'seg')])
def test_image_demo_cli_writes_the_visualisation(trained, images, tmp_path, tool, name, kind):
    import mmcv
    cfg, ckpt = trained[name]
    out = tmp_path / 'vis' / 'out.png'
    proc = tool(['tools/image_demo.py', images[kind], cfg, ckpt, '--out-file', str(out),
                 '--score-thr', '0'])
    assert 'wrote' in proc.stdout
    vis, img = mmcv.imread(str(out)), mmcv.imread(images[kind])
    assert vis.shape == img.shape
    assert not np.array_equal(vis, img)  # something was drawn
    assert os.listdir(out.parent) == ['out.png']


def _demo(args):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'image_demo', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'image_demo.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(args)


@pytest.mark.parametrize('name', ['asff', 'aff'])
def test_grayscale_17x23_image_runs(trained, images, tmp_path, name):
    import mmcv
    cfg, ckpt = trained[name]
    out = tmp_path / 'g.png'
    assert _demo([images['gray'], cfg, ckpt, '--out-file', str(out)]) == 0
    assert mmcv.imread(str(out)).shape == (17, 23, 3)


def test_bad_inputs_are_named_and_leave_nothing(trained, images, tmp_path, capsys):
    det_cfg, det_ckpt = trained['fine']
    _, seg_ckpt = trained['baff']
    out = tmp_path / 'out' / 'x.png'
    cases = [
        ([str(tmp_path / 'missing.png'), det_cfg, det_ckpt], r"IMAGE: no such file .*missing"),
        ([images['junk'], det_cfg, det_ckpt], r"IMAGE: .*not_an_image.png' is not a readable"),
        ([images['det'], det_cfg, str(tmp_path / 'none.pth')], r'CKPT: no such file'),
        ([images['det'], det_cfg, images['junk']], r'CKPT .* is not a PyTorch checkpoint'),
        ([images['det'], det_cfg, seg_ckpt],
         r"CKPT .*iter_1.pth' does not match CONFIG .*tiny_fine.py': only 0 of"),
        ([images['det'], str(tmp_path / 'nope.py'), det_ckpt], r'CONFIG: no such file'),
    ]
    for args, pattern in cases:
        assert _demo(args + ['--out-file', str(out)]) == 2, args
        err = capsys.readouterr().err
        assert re.search(pattern, err), (pattern, err[-500:])
        assert not out.parent.exists() or not os.listdir(out.parent), os.listdir(out.parent)


def test_untrusted_pickle_needs_trust_flag(trained, images, tmp_path, capsys):
    """A checkpoint with arbitrary pickled objects is refused unless --trust-checkpoint."""
    cfg, ckpt = trained['fine']
    sd = torch.load(ckpt, map_location='cpu', weights_only=True)
    sd['meta']['extra'] = np.float64(1.0)  # numpy scalar: not weights-only loadable
    bad = tmp_path / 'numpy_meta.pth'
    torch.save(sd, bad)
    out = tmp_path / 'x.png'
    assert _demo([images['det'], cfg, str(bad), '--out-file', str(out)]) == 2
    assert '--trust-checkpoint' in capsys.readouterr().err and not out.exists()
    assert _demo([images['det'], cfg, str(bad), '--out-file', str(out),
                  '--trust-checkpoint']) == 0
    assert out.exists()


def test_browse_dataset_det_and_seg(tiny_coco, tiny_cityscapes, repo_root, tmp_path, tool):
    import glob

    import mmcv
    cfg = tiny_det_config(tmp_path, tiny_coco, repo_root, base='mask-rcnn_r18_fine_synth-coco.py')
    tool(['tools/analysis/browse_dataset.py', cfg, '--output-dir', str(tmp_path / 'det'),
          '--max-images', '3'])
    det = sorted(glob.glob(str(tmp_path / 'det' / '*.png')))
    assert len(det) == 3
    proc = tool(['tools/analysis/browse_dataset.py',
                 'configs/quickstart/skipnet_mobilenet-v2_phase1_synth-cityscapes.py',
                 '--split', 'val', '--output-dir', str(tmp_path / 'seg'), '--cfg-options',
                 f'val_dataloader.dataset.data_root={tiny_cityscapes}'])
    seg = sorted(glob.glob(str(tmp_path / 'seg' / '*.png')))
    assert len(seg) == 4 and 'mmseg val: 4 samples' in proc.stdout
    # the semantic map is blended over the image: the drawn sample is not the raw image
    raw = mmcv.imread(sorted(glob.glob(tiny_cityscapes + 'leftImg8bit/val/*/*.png'))[0])
    drawn = mmcv.imread(seg[0])
    assert drawn.shape == raw.shape and np.abs(drawn.astype(int) - raw).mean() > 5
    missing = tool(['tools/analysis/browse_dataset.py', cfg, '--output-dir', str(tmp_path / 'x'),
                    '--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent/'],
                   check=False)
    assert missing.returncode == 2 and '/nonexistent/' in missing.stderr
