"""Argument checks shared by the plain layers, ops, backbones and pixel decoders.

One place for the checks that constructors repeat, so that every module raises the same
``ValueError`` with the same wording: the argument's name, what was expected, and the
value that was given (``repr``), e.g. ``ratio must be an int >= 1, got 0`` or
``weight_mode must be one of ('full', 'simple', 'uniform'), got 'soft'``.

Standard library only (no torch, no OpenMMLab): ``fusion_necks.ops`` / ``.layers`` /
``.backbones`` import it and must stay importable where only PyTorch is installed.
"""
from typing import Any, Iterable, Optional, TypeVar

T = TypeVar('T')


def check_int(name: str, value: Any, minimum: int = 1, maximum: Optional[int] = None,
              prefix: str = '') -> int:
    """Return ``value`` if it is an ``int`` in ``[minimum, maximum]``, else raise.

    ``bool`` is rejected although it subclasses ``int`` (``kernel_size=True`` is a
    config mistake, not a 1), and so are floats such as ``8.0``.

    Args:
        name: the argument's name, first word of the message.
        value: the value to check.
        minimum: smallest allowed value (inclusive). Default: 1.
        maximum: largest allowed value (inclusive), or None for no upper bound.
        prefix: put in front of the message, e.g. ``'BAFF: '`` to name the module.

    Raises:
        ValueError: ``'<prefix><name> must be an int >= <minimum>, got <value!r>'``, or
        ``'... must be an int in [<minimum>, <maximum>], got ...'`` with a maximum.
    """
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        expected = f'>= {minimum}' if maximum is None else f'in [{minimum}, {maximum}]'
        raise ValueError(f'{prefix}{name} must be an int {expected}, got {value!r}')
    return value


def check_choice(name: str, value: T, choices: Iterable, prefix: str = '') -> T:
    """Return ``value`` if it is one of ``choices``, else raise.

    Args:
        name: the argument's name, first word of the message.
        value: the value to check.
        choices: the allowed values (a tuple, list, or the keys of a dict).
        prefix: put in front of the message, e.g. ``'SkipNetHead: '``.

    Raises:
        ValueError: ``'<prefix><name> must be one of <tuple(choices)>, got <value!r>'``.
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f'{prefix}{name} must be one of {choices}, got {value!r}')
    return value


__all__ = ['check_choice', 'check_int']
