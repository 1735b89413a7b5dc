"""SyncBN that is plain BatchNorm on machines without CUDA.

mmseg's configs (and our Cityscapes configs, which follow them) use
``norm_cfg=dict(type='SyncBN')``. ``torch.nn.SyncBatchNorm`` only synchronises on a GPU:
in a CPU distributed run it raises, and a model built on a CPU (``mmseg.apis.init_model``,
our tools) carries SyncBN modules that are plain BN in all but name. :class:`SyncBatchNorm`
is what ``type='SyncBN'`` builds once ``fusion_necks`` is imported: ``nn.SyncBatchNorm``
when CUDA is available, ``nn.BatchNorm2d`` otherwise. Both have the same parameters and
buffers (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``),
so checkpoints load unchanged either way, and a GPU run is exactly upstream's.

Set ``FUSION_NECKS_KEEP_SYNCBN=1`` to keep ``nn.SyncBatchNorm`` on CPUs too.
"""
import logging
import os

import torch
from torch import nn

_logged = False


def _log_once() -> None:
    global _logged
    if _logged:
        return
    _logged = True
    msg = ("norm_cfg type='SyncBN' builds nn.BatchNorm2d: CUDA is not available "
           '(fusion_necks.layers.sync_batch_norm; FUSION_NECKS_KEEP_SYNCBN=1 keeps SyncBN)')
    try:
        from mmengine.logging import print_log
        print_log(msg, logger='current', level=logging.INFO)
    except ImportError:
        logging.getLogger('fusion_necks').info(msg)


def keep_sync_bn() -> bool:
    """Whether ``SyncBN`` stays ``nn.SyncBatchNorm``: with CUDA, or when the user asks."""
    return torch.cuda.is_available() or os.environ.get('FUSION_NECKS_KEEP_SYNCBN', '') == '1'


class SyncBatchNorm(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm(num_features, **kwargs)`` with CUDA, ``nn.BatchNorm2d`` without.

    Args:
        num_features (int): C of the (N, C, H, W) input.
        **kwargs: ``eps``, ``momentum``, ``affine``, ``track_running_stats`` (both
            classes); ``process_group`` is only used by the SyncBN branch.
    """

    def __new__(cls, num_features: int, **kwargs):
        if keep_sync_bn():
            return nn.SyncBatchNorm(num_features, **kwargs)
        kwargs.pop('process_group', None)
        _log_once()
        return nn.BatchNorm2d(num_features, **kwargs)
