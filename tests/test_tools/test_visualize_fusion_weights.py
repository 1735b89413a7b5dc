"""tools/analysis/visualize_fusion_weights.py on randomly initialised mmdet and mmseg models."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location(
        'visualize_fusion_weights',
        osp.join(ROOT, 'tools', 'analysis', 'visualize_fusion_weights.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _image(path, h, w):
    import cv2
    rng = np.random.default_rng(0)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    cv2.rectangle(img, (w // 4, h // 4), (w // 2, h // 2), (0, 0, 255), -1)
    cv2.imwrite(str(path), img)
    return str(path)


def _save_random_checkpoint(cfg_path, ckpt_path):
    from fusion_necks.utils.config import build_model, load_config
    model = build_model(load_config(str(cfg_path)))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt_path)
    return str(ckpt_path)


DET_CFG = """
_base_ = '{base}'
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=[dict(_base_.model.neck[0], in_channels=[64, 128, 256, 512]), _base_.model.neck[1]])
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]))
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
"""

SEG_CFG = """
default_scope = 'mmseg'
custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, test_cfg=dict(size_divisor=32)),
    backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3),
                  norm_cfg=dict(type='BN'), contract_dilation=True),
    neck=[dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=32, num_outs=4),
          dict(type='ASFFNeck', in_channels=32, num_levels=4, fuse_range=1,
               norm_cfg=dict(type='GN', num_groups=8), level_names=['P2', 'P3', 'P4', 'P5'])],
    decode_head=dict(type='FPNHead', in_channels=[32, 32, 32, 32], in_index=[0, 1, 2, 3],
                     feature_strides=[4, 8, 16, 32], channels=16, dropout_ratio=0.1,
                     num_classes=19, norm_cfg=dict(type='BN'), align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(100, 70), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]))
"""


def _check_outputs(written, n_modules, ori_hw, sources):
    import cv2
    assert len(written) == n_modules
    for path, maps in written.items():
        png = cv2.imread(path)
        assert png is not None and png.shape[0] > 100 and png.shape[1] > 300
        assert png.std() > 10                    # something was drawn
        assert maps.shape[1:] == ori_hw
        assert maps.shape[0] in sources
        np.testing.assert_allclose(maps.sum(0), 1.0, atol=1e-5)   # softmax, mapped back


def test_mmdet_retinanet_asff(tool, tmp_path):
    cfg = tmp_path / 'det.py'
    cfg.write_text(DET_CFG.format(
        base=osp.join(ROOT, 'configs', 'asff', 'retinanet_r50_fpn-asff_1x_coco.py')))
    ckpt = _save_random_checkpoint(cfg, tmp_path / 'det.pth')
    img = _image(tmp_path / 'img.jpg', 75, 130)      # odd size: resize + pad to 32
    written = tool.main([str(cfg), ckpt, img, '--out-dir', str(tmp_path / 'out')])
    _check_outputs(written, 5, (75, 130), {5})
    names = sorted(osp.basename(p) for p in written)
    assert names == [f'neck.1.fusions.{i}-P{i + 3}-weights.png' for i in range(5)]


def test_mmseg_asff_with_fusion_limit(tool, tmp_path):
    cfg = tmp_path / 'seg.py'
    cfg.write_text(SEG_CFG)
    ckpt = _save_random_checkpoint(cfg, tmp_path / 'seg.pth')
    img = _image(tmp_path / 'img.png', 61, 90)
    written = tool.main([str(cfg), ckpt, img, '--out-dir', str(tmp_path / 'out')])
    _check_outputs(written, 4, (61, 90), {2, 3})   # fuse_range=1: 2 or 3 sources


def test_checkpoint_weights_are_used(tool, tmp_path):
    """A checkpoint that makes one source win everywhere must show in the maps."""
    cfg = tmp_path / 'seg.py'
    cfg.write_text(SEG_CFG)
    from fusion_necks.utils.config import build_model, load_config
    model = build_model(load_config(str(cfg)))
    with torch.no_grad():
        f = model.neck[1].fusions['1']        # P3 from P2, P3, P4
        f.weight_levels.weight.zero_()
        f.weight_levels.bias.copy_(torch.tensor([0.0, 0.0, 20.0]))
    ckpt = tmp_path / 'biased.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    m, data = tool.load_model_and_data(str(cfg), str(ckpt), _image(tmp_path / 'i.png', 64, 64))
    written = tool.visualize(m, data, str(tmp_path / 'i.png'), str(tmp_path / 'out'))
    maps = [v for k, v in written.items() if 'fusions.1-' in k][0]
    assert maps.shape == (3, 64, 64) and maps[2].min() > 0.999


def test_maps_go_back_to_the_original_image(tool):
    """A ramp over the padded input lands where the resized image was cut out."""
    input_hw, img_hw, ori_hw, stride = (64, 96), (50, 90), (100, 180), 8
    w_in = input_hw[1]
    centres = (torch.arange(w_in // stride) + 0.5) * stride - 0.5      # align_corners=False
    ramp = (centres / w_in).expand(input_hw[0] // stride, -1)[None]    # 1 x h x w
    out = tool.maps_to_image(ramp, input_hw, img_hw, ori_hw)
    assert out.shape == (1,) + ori_hw
    j = np.arange(20, 160)                       # away from the borders
    expected = ((j + 0.5) * img_hw[1] / ori_hw[1] - 0.5) / w_in
    np.testing.assert_allclose(out[0, 50, j], expected, atol=1e-4)


def test_model_without_recorders_is_reported(tool):
    from torch import nn
    with pytest.raises(RuntimeError, match='no fusion module'):
        tool.record_fusion_weights(nn.Conv2d(1, 1, 1), {})


def test_any_recorder_is_drawn(tool, tmp_path):
    """Generic over recorders: a BAFF-like B x 1 x H x W map, a B x H x W map, a map
    outside [0, 1]; a map that is not an image is skipped, not fatal."""
    import types

    from torch import nn

    from fusion_necks.layers import register_fusion_map_hooks, store_fusion_map

    class Recorder(nn.Module):
        def forward(self, x):
            return x

    def build(module):
        def hook(_m, args, _out):
            x = args[0]
            store_fusion_map(module, 'weights', torch.sigmoid(x[:, :1, ::4, ::4]))
            store_fusion_map(module, 'flat', torch.sigmoid(x[:, 0, ::8, ::8]))
            store_fusion_map(module, 'offsets', x[:, :2, ::8, ::8] * 5)
            store_fusion_map(module, 'tokens', x[:, :1, :4, :4, None])
        return [module.register_forward_hook(hook)]

    register_fusion_map_hooks(Recorder, build)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Recorder()

        def forward(self, inputs, data_samples=None, mode='tensor'):
            return self.head(inputs)

    img = _image(tmp_path / 'i.png', 40, 70)
    sample = types.SimpleNamespace(metainfo=dict(img_shape=(48, 84), ori_shape=(40, 70)))
    data = dict(inputs=torch.randn(1, 3, 64, 96), data_samples=[sample])
    written = tool.visualize(Model(), data, img, str(tmp_path / 'out'))
    names = sorted(osp.basename(p) for p in written)
    assert names == ['head-flat.png', 'head-offsets.png', 'head-weights.png']
    for maps in written.values():
        assert maps.shape == (maps.shape[0], 40, 70)
    assert [v.shape[0] for k, v in sorted(written.items())] == [1, 2, 1]
