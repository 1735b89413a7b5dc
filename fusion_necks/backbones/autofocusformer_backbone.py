"""``AutoFocusFormer``: the backbone registered under that name in mmdet's and mmseg's ``MODELS``.

A thin subclass of the plain-PyTorch network :class:`AutoFocusFormerNet` with the OpenMMLab
backbone conventions: ``init_cfg`` (e.g. ``dict(type='Pretrained', checkpoint=...)`` of
a checkpoint converted by ``tools/model_converters/aff2fusion.py``), ``frozen_stages``,
``norm_eval`` and, by default, dense outputs so that FPN/UPerHead-style necks and heads
work unchanged. It is an mmengine ``BaseModule``; only ``fusion_necks.registry`` imports
this module, so ``fusion_necks.backbones`` itself stays free of OpenMMLab.
"""
import copy
from typing import List, Optional, Union

from mmengine.model import BaseModule
from torch import nn

from ..utils.validation import check_int
from .autofocusformer import AutoFocusFormerNet


# BaseModule after AutoFocusFormerNet in the MRO: AutoFocusFormerNet.__init__ calls
# super().__init__() without arguments, which then lands in BaseModule.__init__
# (init_cfg=None, is_init False) and nn.Module.__init__ exactly once. (BaseModule first
# would make BaseModule.__init__'s own super().__init__() call AutoFocusFormerNet.__init__
# with no arguments: a second, default network.) The module tree, hence the state-dict
# keys and the official-checkpoint load hook, is the plain backbone's.
class AutoFocusFormer(AutoFocusFormerNet, BaseModule):
    """AutoFocusFormer as an OpenMMLab backbone.

    All arguments of :class:`AutoFocusFormerNet` are accepted (``arch``, ``ds_rate``,
    ``alpha``, the ablation switches, ...), plus:

    Args:
        out_dense: default True here: ``forward`` returns a tuple of
            ``B x C_i x ceil(H / s_i) x ceil(W / s_i)`` maps (strides 4, 8, 16, 32), with
            ``C_i = embed_dims[i]``. Set False to get :class:`PointFeatures` tuples for a
            point-based head.
        frozen_stages: freeze the patch embedding (>= 0) and stages ``0..frozen_stages-1``
            together with their output norms and downsampling (-1: nothing frozen).
        norm_eval: keep the patch-embedding BatchNorm in eval mode during training.
        init_cfg: OpenMMLab init config (dict or list of dicts); applied by
            ``init_weights`` (``BaseModule``'s: ``Pretrained`` last) on top of the
            official initialisation, which construction already did. A ``Pretrained``
            checkpoint loads non-strictly (mmengine logs missing/unexpected keys); an
            official-format file is converted by the backbone's load hook.
    """

    def __init__(self, *args, out_dense: bool = True, frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        super().__init__(*args, out_dense=out_dense, **kwargs)
        check_int('frozen_stages', frozen_stages, -1, self.num_stages)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.init_cfg = copy.deepcopy(init_cfg)  # BaseModule.__init__ ran with None
        self._freeze_stages()

    def init_weights(self) -> None:
        """``BaseModule.init_weights`` (``init_cfg``, ``Pretrained`` last), then the
        frozen stages are frozen again: a checkpoint load must not leave them trainable."""
        super().init_weights()
        self._freeze_stages()

    def _frozen_modules(self) -> List[nn.Module]:
        mods: List[nn.Module] = []
        if self.frozen_stages >= 0:
            mods.append(self.patch_embed)
        for i in range(max(0, self.frozen_stages)):
            mods.append(self.stages[i])
            if str(i) in self.out_norms:
                mods.append(self.out_norms[str(i)])
        return mods

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'AutoFocusFormer':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
