"""Bad input gets a message that says what is wrong and how to fix it."""
import sys
import textwrap

import pytest

from fusion_necks.utils.config import ConfigError, explain_registry_error, load_config
from fusion_necks.utils.data_check import DataNotFoundError, check_data_paths


def test_missing_synthetic_dataset_names_path_and_generator(repo_root):
    cfg = load_config(f'{repo_root}/configs/quickstart/retinanet_r18_fpn_synth-coco.py',
                      {'train_dataloader.dataset.data_root': '/nonexistent/synthetic_coco/'})
    with pytest.raises(DataNotFoundError) as e:
        check_data_paths(cfg, ['train'])
    msg = str(e.value)
    assert '/nonexistent/synthetic_coco/annotations/instances_train2017.json' in msg
    assert 'make_synthetic_coco.py /nonexistent/synthetic_coco' in msg


def test_missing_real_datasets_say_where_to_get_them(repo_root):
    cfg = load_config(f'{repo_root}/configs/fpn/retinanet_r18_fpn_1x_coco.py',
                      {'train_dataloader.dataset.data_root': '/nowhere/coco/'})
    with pytest.raises(DataNotFoundError, match='cocodataset.org'):
        check_data_paths(cfg, ['train'])
    cfg = load_config(f'{repo_root}/configs/fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
                      {'val_dataloader.dataset.data_root': '/nowhere/cityscapes/'})
    with pytest.raises(DataNotFoundError, match='cityscapes-dataset.com') as e:
        check_data_paths(cfg, ['val'])
    assert '/nowhere/cityscapes/leftImg8bit/val' in str(e.value)


def test_missing_cityscapes_synthetic_names_generator(repo_root, tmp_path):
    cfg = load_config(f'{repo_root}/configs/quickstart/sem-fpn_r18_fpn_synth-cityscapes.py',
                      {'train_dataloader.dataset.data_root': str(tmp_path / 'synthetic_cityscapes') + '/'})
    with pytest.raises(DataNotFoundError, match='make_synthetic_cityscapes.py'):
        check_data_paths(cfg, ['train'])


def test_train_tool_exits_with_the_message(repo_root, tool):
    proc = tool(['tools/train.py', 'configs/quickstart/retinanet_r18_fpn_synth-coco.py',
                 '--cfg-options', 'train_dataloader.dataset.data_root=/nonexistent/synthetic_coco/'],
                check=False)
    assert proc.returncode == 2
    assert 'does not exist' in proc.stderr and 'make_synthetic_coco.py' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_unregistered_type_says_to_add_custom_imports(tmp_path, repo_root, tiny_coco, tool):
    cfg = tmp_path / 'no_imports.py'
    cfg.write_text(textwrap.dedent(f'''
        _base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
        data_root = '{tiny_coco}'
        train_dataloader = dict(dataset=dict(data_root=data_root))
        val_dataloader = dict(dataset=dict(data_root=data_root))
        test_dataloader = val_dataloader
        val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
        test_evaluator = val_evaluator
        model = dict(backbone=dict(init_cfg=None), neck=dict(type='SomePluginFPN'))
        '''))
    proc = tool(['tools/train.py', str(cfg), '--work-dir', str(tmp_path / 'w')], check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "'SomePluginFPN' is not registered" in proc.stderr
    assert "custom_imports = dict(imports=['fusion_necks.registry']" in proc.stderr


def test_registry_error_suggests_close_names():
    from mmengine.config import Config
    err = KeyError('FPNN is not in the mmdet::model registry. Please check whether ...')
    msg = explain_registry_error(err, Config(dict(custom_imports=dict(imports=['fusion_necks.registry']))))
    assert 'Did you mean' in msg and 'FPN' in msg
    assert 'custom_imports' not in msg  # already there: the hint would mislead
    assert explain_registry_error(KeyError('some other key'), None) is None


def test_config_without_scope_is_rejected(tmp_path):
    from fusion_necks.utils.config import detect_scope
    cfg = tmp_path / 'bare.py'
    cfg.write_text('model = dict(type="X")\n')
    with pytest.raises(ConfigError, match="default_scope='mmdet' or 'mmseg'"):
        detect_scope(load_config(str(cfg)))
    with pytest.raises(ConfigError, match='does not exist'):
        load_config(str(tmp_path / 'missing.py'))


def test_test_tool_missing_checkpoint(repo_root, tool):
    proc = tool(['tools/test.py', 'configs/quickstart/retinanet_r18_fpn_synth-coco.py',
                 '/nonexistent/ckpt.pth'], check=False)
    assert proc.returncode == 2 and 'checkpoint /nonexistent/ckpt.pth does not exist' in proc.stderr


def test_missing_compiled_mmcv_ops_are_detected(tool):
    """A wrong install (mmcv without mmcv._ext) is reported with the fix."""
    script = textwrap.dedent('''
        import sys
        class NoExt:
            def find_spec(self, name, path=None, target=None):
                if name == 'mmcv._ext':
                    raise ImportError('libmmcv_ext.so: cannot open shared object file')
                return None
        sys.meta_path.insert(0, NoExt())
        from fusion_necks.utils.env_check import main
        sys.exit(main())
        ''')
    import subprocess
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert 'compiled ops' in proc.stderr and 'MMCV_FORCE_BUILD=1 bash tools/install.sh' in proc.stderr


def test_demo_unknown_neck_lists_available(tool):
    proc = tool(['tools/demo.py', '--neck', 'nosuchneck'], check=False)
    assert proc.returncode != 0
    assert "no quickstart config for neck 'nosuchneck'" in proc.stderr and 'fpn' in proc.stderr


def test_missing_pretrained_checkpoint_is_an_error_unless_offline(repo_root, tmp_path):
    """configs/fpn/retinanet_r18_fpn_1x_coco.py names torchvision://resnet18; without a local
    copy, training stops before it starts with the key, the file and the opt-in."""
    import os
    import subprocess
    env = dict(os.environ, PYTHONPATH=repo_root, PYTHONWARNINGS='ignore',
               FUSION_NECKS_CHECKPOINTS=str(tmp_path), TORCH_HOME=str(tmp_path / 'hub'))
    env.pop('FUSION_NECKS_OFFLINE', None)
    cmd = [sys.executable, 'tools/train.py', 'configs/fpn/retinanet_r18_fpn_1x_coco.py',
           '--work-dir', str(tmp_path / 'w')]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert "model.backbone.init_cfg.checkpoint = 'torchvision://resnet18' has no local copy" in err
    assert 'resnet18-f37072fd.pth' in err and '--offline' in err and 'Traceback' not in err
    # --offline gets past that point (and stops at the missing COCO data instead)
    proc = subprocess.run(cmd + ['--offline'], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and 'has no local copy' not in proc.stderr
    assert 'cocodataset.org' in proc.stderr, proc.stderr[-2000:]
