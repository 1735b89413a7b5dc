"""fusion-necks: multi-scale feature-fusion modules for MMDetection and MMSegmentation.

``import fusion_necks`` (what ``custom_imports=dict(imports=['fusion_necks'])`` in our
configs does) registers every public module into mmdet's and mmseg's ``MODELS``
registries, for whichever of the two frameworks is installed. With neither
installed the plain-PyTorch modules (``fusion_necks.ops``, ``.layers``,
``.backbones``) are still importable.
"""
from .registry import register_all_modules
from .version import __version__

registered = register_all_modules()

__all__ = ['__version__', 'register_all_modules', 'registered']
