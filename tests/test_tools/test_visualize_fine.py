"""tools/analysis/visualize_fine.py (FINE paper, Figure 8): a randomly initialised FINE
detector and segmentor saved as checkpoints, run on a small image."""
import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINE_CFGS = osp.join(ROOT, 'configs', 'fine')


def _tool():
    spec = importlib.util.spec_from_file_location(
        'visualize_fine', osp.join(ROOT, 'tools', 'analysis', 'visualize_fine.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


vf = _tool()


pytestmark = pytest.mark.usefixtures('single_thread')


DET_CFG = f"""_base_ = '{FINE_CFGS}/faster-rcnn_r50_fpn-fine_1x_coco.py'
model = dict(backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[64, 128, 256, 512]))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""
SEG_CFG = f"""_base_ = '{FINE_CFGS}/fpn-fine_r50_4xb2-80k_cityscapes-512x1024.py'
model = dict(pretrained=None, backbone=dict(depth=18), neck=dict(in_channels=[64, 128, 256, 512]))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='PackSegInputs')]
"""


def make_case(tmp_path, text):
    from fusion_necks.utils.config import build_model, load_config
    cfg_path = tmp_path / 'cfg.py'
    cfg_path.write_text(text)
    cfg = load_config(str(cfg_path))
    from mmengine.model import revert_sync_batchnorm
    model = revert_sync_batchnorm(build_model(cfg))
    with torch.no_grad():   # a recognisable, non-trivial FINE: W_O random (not zero)
        for name, p in model.named_parameters():
            if 'fine_layers' in name:
                p.normal_(0, 0.05)
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    img = (np.random.default_rng(0).random((100, 300, 3)) * 255).astype(np.uint8)
    img[20:60, 40:120] = (0, 0, 255)   # an "object"
    img_path = tmp_path / 'street.png'
    cv2.imwrite(str(img_path), img)
    return str(cfg_path), str(ckpt), str(img_path), model


def test_crop_and_reduce_helpers():
    x = torch.tensor([[[3., -1.], [0., 2.]], [[4., 1.], [0., -2.]]])   # C=2, 2x2
    np.testing.assert_allclose(vf.reduce_channels(x, 'l2'), [[5, 2 ** .5], [0, 8 ** .5]])
    np.testing.assert_allclose(vf.reduce_channels(x, 'mean'), [[3.5, 0], [0, 0]])
    np.testing.assert_allclose(vf.reduce_channels(x, 'absmean'), [[3.5, 1], [0, 2]])
    np.testing.assert_allclose(vf.reduce_channels(x, 'max'), [[4, 1], [0, 2]])
    heat = np.arange(8 * 20).reshape(8, 20)
    # stride 8 over a 64x160 padded input holding a 53x155 image: 7 x 20 map cells
    assert vf.crop_to_image(heat, (53, 155), (64, 160)).shape == (7, 20)
    assert vf.crop_to_image(heat, (64, 160), (64, 160)).shape == (8, 20)
    # a 13-row map of a 100-row input (non-divisible stride): 60 image rows -> 8 rows
    assert vf.crop_to_image(np.zeros((13, 5)), (60, 40), (100, 40)).shape == (8, 5)
    assert vf.infer_stride((4, 10), (53, 160)) == 16 and vf.infer_stride((7, 20), (53, 160)) == 8


@pytest.mark.parametrize('text', [DET_CFG, SEG_CFG], ids=['mmdet', 'mmseg'])
def test_writes_figure8_heatmaps(tmp_path, text):
    cfg, ckpt, img, ref_model = make_case(tmp_path, text)
    # the tool loads the checkpoint's weights
    model, scope = vf.build(cfg, ckpt)
    for (n, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), n
    maps, img_shape, input_shape, ori_shape = vf.run(model, scope, img)
    assert ori_shape == (100, 300) and img_shape == (53, 160)   # resized by 160/300
    assert set(maps) == {'neck.fine_layers.level2', 'neck.fine_layers.level1'}
    for block, stride in (('neck.fine_layers.level2', 16), ('neck.fine_layers.level1', 8)):
        m = maps[block]
        low_hw = tuple(-(-s // stride) for s in input_shape)
        high_hw = tuple(-(-s // (2 * stride)) for s in input_shape)
        assert m['low'].shape == m['M'].shape == m['aligned'].shape == (256, *low_hw)
        assert m['high'].shape == (256, *high_hw)
        torch.testing.assert_close(m['aligned'], m['low'] * m['M'] + m['low'])
        assert m['M'].abs().sum() > 0

    out_dir = tmp_path / 'vis'
    assert vf.main([cfg, ckpt, img, '--out-dir', str(out_dir)]) == 0
    heats = vf.visualize(cfg, ckpt, img, str(out_dir), reduce='mean', alpha=0.0)
    assert set(heats) == {'level2_s16', 'level1_s8'}
    expect_rows = {16: -(-53 // 16), 8: -(-53 // 8)}
    for stage, stride in (('level2_s16', 16), ('level1_s8', 8)):
        for name in vf.MAP_NAMES:
            png = cv2.imread(str(out_dir / f'street_{stage}_{name}.png'))
            assert png is not None and png.shape == (100, 300, 3), (stage, name)
            rows = expect_rows[stride] if name != 'high' else -(-53 // (2 * stride))
            assert heats[stage][name].shape[0] == rows
        panel = cv2.imread(str(out_dir / f'street_{stage}.png'))
        assert panel.shape == (100 + 28, 5 * 300, 3)
    # heatmap pixels are the JET colouring of the normalised map: not constant
    png = cv2.imread(str(out_dir / 'street_level1_s8_M.png'))
    assert png.reshape(-1, 3).std(0).max() > 10


def test_model_without_fine_is_refused(tmp_path):
    text = DET_CFG.replace("neck=dict(in_channels", "neck=dict(fine_kernel_sizes=(), in_channels")
    cfg, ckpt, img, _ = make_case(tmp_path, text)
    model, scope = vf.build(cfg, ckpt)
    with pytest.raises(RuntimeError, match='no FINE block'):
        vf.run(model, scope, img)
