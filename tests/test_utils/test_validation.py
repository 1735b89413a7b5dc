"""The shared argument checks (fusion_necks.utils.validation): messages name the argument,
the expected value and the value given; the modules that use them keep their wording."""
import subprocess
import sys
import textwrap

import pytest

from fusion_necks.utils.validation import check_choice, check_int


@pytest.mark.parametrize('value', [1, 2, 10**9])
def test_check_int_accepts_and_returns_ints(value):
    assert check_int('channels', value) == value


@pytest.mark.parametrize('value', [0, -3, 1.0, 8.0, '8', None, True, False])
def test_check_int_rejects_with_the_name_bound_and_value(value):
    with pytest.raises(ValueError) as err:
        check_int('channels', value)
    assert str(err.value) == f'channels must be an int >= 1, got {value!r}'


def test_check_int_minimum_maximum_and_prefix():
    assert check_int('fuse_range', 0, minimum=0) == 0
    assert check_int('predict_level', -3, -3, 2) == -3
    with pytest.raises(ValueError, match=r"^ratio must be an int >= 2, got 1$"):
        check_int('ratio', 1, minimum=2)
    with pytest.raises(ValueError,
                       match=r"^Head: predict_level must be an int in \[-3, 2\], got 3$"):
        check_int('predict_level', 3, -3, 2, prefix='Head: ')
    with pytest.raises(ValueError, match=r'^BAFF: block_size must be an int >= 1, got 0$'):
        check_int('block_size', 0, prefix='BAFF: ')


def test_check_choice_accepts_tuples_lists_and_dict_keys():
    assert check_choice('mode', 'avg', ('avg', 'max')) == 'avg'
    assert check_choice('arch', 'mini', ['mini', 'tiny']) == 'mini'
    assert check_choice('attention', 'aats', {'aats': 1, 'vanilla': 2}) == 'aats'


def test_check_choice_message_lists_the_choices_as_a_tuple():
    with pytest.raises(ValueError) as err:
        check_choice('weight_mode', 'soft', ('full', 'simple', 'uniform'))
    assert str(err.value) == ("weight_mode must be one of ('full', 'simple', 'uniform'), "
                              "got 'soft'")
    with pytest.raises(ValueError) as err:
        check_choice('attention', 'dense', {'aats': 1, 'vanilla': 2}, prefix='FINE: ')
    assert str(err.value) == "FINE: attention must be one of ('aats', 'vanilla'), got 'dense'"
    with pytest.raises(ValueError, match=r"got \['avg'\]$"):  # unhashable values too
        check_choice('mode', ['avg'], ('avg', 'max'))


@pytest.mark.parametrize('build, match', [
    # layers
    ("FINE(256, ratio=0)", r'^ratio must be an int >= 1, got 0$'),
    ("FINE(256, attention='dense')", r"^attention must be one of \('aats', 'vanilla', "),
    ("CrossLevelAttention(8, 2, grouping='strip')", r'^grouping must be one of'),
    ("TokenSampler(8, 2, 'median')", r"^mode must be one of \('avg', 'max', 'dwconv'\)"),
    ("BAFF(19, mid_channels=0)", r'^BAFF: mid_channels must be an int >= 1, got 0$'),
    ("BAFF(19, weight_net='mlp')", r"^BAFF: weight_net must be one of \('conv3d', 'conv2d'\)"),
    ("ASFFSource(8, 0, 1)", r'^out_channels must be an int >= 1, got 0$'),
    ("ASFFLevelFusion([8, 8], 0, order='up')", r"^order must be one of"),
    # ops / backbones / pixel decoders
    ("knn(torch.zeros(1, 2, 2), torch.zeros(1, 3, 2), 1, ties='any')", r'^ties must be one of'),
    ("AutoFocusFormerNet('huge')", r"^arch must be one of \('base', 'base_1_5th', "),
    ("PointConv(8, 8, num_neighbours=0)", r'^num_neighbours must be an int >= 1, got 0$'),
    ("PointMSDeformAttn(8, 2, offset_units='px')", r'^offset_units must be one of'),
])
def test_modules_raise_the_shared_messages(build, match):
    import torch  # noqa: F401  (used by the expressions)
    from fusion_necks.backbones import AutoFocusFormerNet  # noqa: F401
    from fusion_necks.layers import BAFF, FINE, ASFFLevelFusion, CrossLevelAttention  # noqa
    from fusion_necks.layers.asff_source import ASFFSource  # noqa: F401
    from fusion_necks.layers.token_sampling import TokenSampler  # noqa: F401
    from fusion_necks.ops import knn  # noqa: F401
    from fusion_necks.layers.point import PointConv, PointMSDeformAttn  # noqa: F401
    with pytest.raises(ValueError, match=match):
        eval(build)


def test_asff_neck_still_imports_check_choice_from_asff_source():
    from fusion_necks.layers import asff_source
    assert asff_source.check_choice is check_choice


def test_imports_no_openmmlab_or_torch():
    """The checks are imported by fusion_necks.ops/.layers/.backbones, which must run with
    PyTorch alone; the module itself needs only the standard library."""
    script = textwrap.dedent('''
        import sys
        import fusion_necks.utils, fusion_necks.utils.validation
        mm = sorted({m.split('.')[0] for m in sys.modules
                     if m.split('.')[0] in ('mmdet', 'mmseg', 'mmcv', 'mmengine', 'torch')})
        assert not mm, mm
        print('OK')
        ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'OK' in proc.stdout
