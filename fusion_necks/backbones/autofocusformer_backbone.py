"""The AutoFocusFormer registered in mmdet's and mmseg's ``MODELS`` as ``AutoFocusFormer``.

A thin subclass of the plain-PyTorch :class:`AutoFocusFormer` with the OpenMMLab
backbone conventions: ``init_cfg`` (e.g. ``dict(type='Pretrained', checkpoint=...)`` of
a checkpoint converted by ``tools/model_converters/aff2fusion.py``), ``frozen_stages``,
``norm_eval`` and, by default, dense outputs so that FPN/UPerHead-style necks and heads
work unchanged. It imports nothing from OpenMMLab at module level: ``init_weights``
uses ``mmengine.model.initialize`` lazily when it is installed and falls back to
``torch.load`` for a plain ``Pretrained`` file otherwise.
"""
import copy
import warnings
from typing import List, Optional, Union

import torch
from torch import nn

from .autofocusformer import AutoFocusFormer


class AutoFocusFormerBackbone(AutoFocusFormer):
    """AutoFocusFormer as an OpenMMLab backbone.

    All arguments of :class:`AutoFocusFormer` are accepted (``arch``, ``ds_rate``,
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
            ``init_weights`` after the default (official) initialisation.
    """

    def __init__(self, *args, out_dense: bool = True, frozen_stages: int = -1,
                 norm_eval: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        super().__init__(*args, out_dense=out_dense, **kwargs)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.init_cfg = copy.deepcopy(init_cfg)
        self._is_init = False
        self._freeze_stages()

    # mmengine's BaseModule.init_weights calls a child's init_weights unless is_init
    @property
    def is_init(self) -> bool:
        return self._is_init

    @is_init.setter
    def is_init(self, value: bool) -> None:
        self._is_init = value

    def init_weights(self) -> None:
        cfgs = self.init_cfg
        if cfgs:
            cfgs = [cfgs] if isinstance(cfgs, dict) else list(cfgs)
            try:
                from mmengine.model import initialize  # lazy: mm* is optional here
            except ImportError:
                for cfg in cfgs:
                    if cfg.get('type') != 'Pretrained':
                        raise RuntimeError(f'init_cfg {cfg} needs mmengine, which is not installed')
                    self._load_plain(cfg['checkpoint'], cfg.get('prefix'))
            else:
                # Pretrained last, so it overrides other initialisers (as BaseModule does)
                others = [c for c in cfgs if c.get('type') != 'Pretrained']
                pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
                if others:
                    initialize(self, others)
                if pretrained:
                    initialize(self, pretrained)
        self._is_init = True
        self._freeze_stages()

    def _load_plain(self, path: str, prefix: Optional[str]) -> None:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        state = ckpt.get('state_dict', ckpt.get('model', ckpt)) if isinstance(ckpt, dict) else ckpt
        if prefix:
            p = prefix if prefix.endswith('.') else prefix + '.'
            state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            warnings.warn(f'{type(self).__name__}: missing keys {missing}, '
                          f'unexpected keys {unexpected}')

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

    def train(self, mode: bool = True) -> 'AutoFocusFormerBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
