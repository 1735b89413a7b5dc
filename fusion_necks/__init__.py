"""fusion-necks: multi-scale feature-fusion modules for MMDetection and MMSegmentation.

Importing the package (or ``fusion_necks.ops``, ``.layers``, ``.backbones``) needs only
PyTorch and imports no OpenMMLab package. Registration into mmdet's and mmseg's registries
is explicit: a config says

    custom_imports = dict(imports=['fusion_necks.registry'], allow_failed_imports=False)

(ours all do), and our tools import ``fusion_necks.registry`` themselves; a script calls
``fusion_necks.registry.register_all_modules()`` or imports that module.
"""
from .version import __version__

__all__ = ['__version__']
