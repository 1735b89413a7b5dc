"""Parameter-name mapping from the official AutoFocusFormer checkpoints to ours.

Official names (apple/ml-autofocusformer ``AutoFocusFormer`` and
apple/ml-autofocusformer-segmentation ``AFF``):

================================================  ===========================================
official                                           fusion-necks
================================================  ===========================================
``patch_embed.proj1 / bn / proj2 / norm``          ``patch_embed.conv1 / bn / conv2 / norm``
``layers.i.blocks.j.norm1/norm2/mlp.fc1/mlp.fc2``  ``stages.i.blocks.j.`` same
``layers.i.blocks.j.gamma1/gamma2``                ``stages.i.blocks.j.gamma1/gamma2``
``layers.i.blocks.j.attn.q/proj/blank_k/blank_v``  ``stages.i.blocks.j.attn.`` same
``layers.i.blocks.j.attn.kv``                      ``stages.i.blocks.j.attn.kv`` (rows reordered)
``layers.i.blocks.j.attn.pos_embed``               ``stages.i.blocks.j.attn.rel_pos_bias`` (*)
``layers.i.prob_net``                              ``stages.i.downsample.importance``
``layers.i.downsample.weight_net.0 / .1``          ``stages.i.downsample.weight_net.fc / .norm`` (*)
``layers.i.downsample.norm / linear``              ``stages.i.downsample.norm / proj``
``norm0..norm3`` (segmentation backbone)           ``out_norms.0..3``
``norm``, ``head`` (classifier)                    ``norm``, ``head``
================================================  ===========================================

* ``kv``: the official output is split per head as ``[k_h | v_h]`` (``view(b, n, h, 2, d)``);
  ours is ``[k | v]`` each split per head (``view(b, n, 2, h, d)``). Rows are permuted.
* (*) Layers fed by the expanded relative position: the official feature order is
  ``[dx, dy, d, dy/d, dx/d]``; with ``rel_pos_order='paper'`` (our default,
  ``[dx, dy, d, dx/d, dy/d]``) the last two input columns are swapped, so the converted
  model computes exactly the official function.

Prefixes ``module.`` (DDP) and ``backbone.`` (Detectron2 ``.pkl`` / mm checkpoints) are
stripped; keys outside the backbone (a segmentation head) are returned as unused.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

from ..utils.validation import check_choice

_RENAMES = [
    (r'^patch_embed\.proj1\.', 'patch_embed.conv1.'),
    (r'^patch_embed\.proj2\.', 'patch_embed.conv2.'),
    (r'^patch_embed\.(bn|norm)\.', r'patch_embed.\1.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.pos_embed\.',
     r'stages.\1.blocks.\2.attn.rel_pos_bias.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.blocks.\2.'),
    (r'^layers\.(\d+)\.prob_net\.', r'stages.\1.downsample.importance.'),
    (r'^layers\.(\d+)\.downsample\.weight_net\.0\.', r'stages.\1.downsample.weight_net.fc.'),
    (r'^layers\.(\d+)\.downsample\.weight_net\.1\.', r'stages.\1.downsample.weight_net.norm.'),
    (r'^layers\.(\d+)\.downsample\.linear\.', r'stages.\1.downsample.proj.'),
    (r'^layers\.(\d+)\.downsample\.norm\.', r'stages.\1.downsample.norm.'),
    (r'^norm(\d+)\.', r'out_norms.\1.'),
    (r'^(norm|head)\.', r'\1.'),
]

#: official [dx, dy, d, dy/d, dx/d] -> paper [dx, dy, d, dx/d, dy/d]
OFFICIAL_TO_PAPER_COLUMNS = [0, 1, 2, 4, 3]


def unwrap_checkpoint(ckpt) -> Dict[str, Tensor]:
    """The state dict inside a checkpoint (``model`` / ``state_dict`` / bare), as tensors."""
    if isinstance(ckpt, Mapping):
        for key in ('model', 'state_dict'):
            if key in ckpt and isinstance(ckpt[key], Mapping):
                ckpt = ckpt[key]
                break
    out = OrderedDict()
    for k, v in ckpt.items():
        if not isinstance(v, Tensor):
            try:
                v = torch.as_tensor(v)
            except (TypeError, ValueError, RuntimeError):
                continue
        out[k] = v
    return out


def is_official_state_dict(state_dict: Mapping) -> bool:
    """True if the keys use the official names (``layers.i.blocks.j.*`` / ``patch_embed.proj1``)."""
    pattern = re.compile(r'^(module\.)?(backbone\.)?(layers\.\d+\.blocks\.|patch_embed\.proj1\.)')
    return any(isinstance(k, str) and pattern.match(k) for k in state_dict)


def kv_official_to_ours(weight: Tensor, num_heads: int) -> Tensor:
    """Reorder the rows of an official ``kv`` weight (``2C x C``) or bias (``2C``)."""
    two_c = weight.shape[0]
    d = two_c // (2 * num_heads)
    rest = weight.shape[1:]
    return weight.reshape(num_heads, 2, d, *rest).transpose(0, 1).reshape(two_c, *rest).contiguous()


def convert_official_aff(
        state_dict: Mapping[str, Tensor],
        rel_pos_order: str = 'paper') -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """Convert an official AutoFocusFormer state dict to :class:`AutoFocusFormerNet` names.

    Args:
        state_dict: official tensors (CLS classifier or SEG backbone, optionally with
            ``module.``/``backbone.`` prefixes and non-backbone keys).
        rel_pos_order: the ``rel_pos_order`` of the model that will load the result.

    Returns:
        ``(converted, unused_keys)``.
    """
    check_choice('rel_pos_order', rel_pos_order, ('paper', 'official'))
    has_backbone_prefix = any(k.split('module.', 1)[-1].startswith('backbone.') for k in state_dict)
    converted: 'OrderedDict[str, Tensor]' = OrderedDict()
    unused: List[str] = []
    for key, value in state_dict.items():
        name = key[len('module.'):] if key.startswith('module.') else key
        if has_backbone_prefix:
            if not name.startswith('backbone.'):
                unused.append(key)
                continue
            name = name[len('backbone.'):]
        if name.endswith('.kv.weight') or name.endswith('.kv.bias'):
            heads_key = key.rsplit('.kv.', 1)[0] + '.pos_embed.weight'
            if heads_key not in state_dict:
                raise KeyError(f'{heads_key} (needed for the head count of {key}) is missing')
            value = kv_official_to_ours(value, state_dict[heads_key].shape[0])
        if rel_pos_order == 'paper' and value.dim() == 2 and value.shape[1] == 5 and (
                name.endswith('attn.pos_embed.weight') or name.endswith('weight_net.0.weight')):
            value = value[:, OFFICIAL_TO_PAPER_COLUMNS]
        for pattern, repl in _RENAMES:
            new, count = re.subn(pattern, repl, name)
            if count:
                converted[new] = value.clone()
                break
        else:
            unused.append(key)
    return converted, unused


def _official_shapes(arch_cfg: Mapping, num_classes: int, seg: bool) -> Dict[str, tuple]:
    dims, depths, heads = arch_cfg['embed_dims'], arch_cfg['depths'], arch_cfg['num_heads']
    ratio, layer_scale = arch_cfg['mlp_ratio'], arch_cfg['layer_scale']
    half = dims[0] // 2
    shapes = {
        'patch_embed.proj1.weight': (half, 3, 3, 3), 'patch_embed.proj1.bias': (half, ),
        'patch_embed.bn.weight': (half, ), 'patch_embed.bn.bias': (half, ),
        'patch_embed.bn.running_mean': (half, ), 'patch_embed.bn.running_var': (half, ),
        'patch_embed.proj2.weight': (dims[0], half, 3, 3), 'patch_embed.proj2.bias': (dims[0], ),
        'patch_embed.norm.weight': (dims[0], ), 'patch_embed.norm.bias': (dims[0], ),
    }
    for i, (c, depth, h) in enumerate(zip(dims, depths, heads)):
        hidden = int(c * ratio)
        for j in range(depth):
            p = f'layers.{i}.blocks.{j}.'
            shapes.update({
                p + 'norm1.weight': (c, ), p + 'norm1.bias': (c, ),
                p + 'attn.q.weight': (c, c), p + 'attn.q.bias': (c, ),
                p + 'attn.kv.weight': (2 * c, c), p + 'attn.kv.bias': (2 * c, ),
                p + 'attn.blank_k': (c, ), p + 'attn.blank_v': (c, ),
                p + 'attn.pos_embed.weight': (h, 5), p + 'attn.pos_embed.bias': (h, ),
                p + 'attn.proj.weight': (c, c), p + 'attn.proj.bias': (c, ),
                p + 'norm2.weight': (c, ), p + 'norm2.bias': (c, ),
                p + 'mlp.fc1.weight': (hidden, c), p + 'mlp.fc1.bias': (hidden, ),
                p + 'mlp.fc2.weight': (c, hidden), p + 'mlp.fc2.bias': (c, ),
            })
            if layer_scale > 0:
                shapes.update({p + 'gamma1': (c, ), p + 'gamma2': (c, )})
        if i < len(dims) - 1:
            p = f'layers.{i}.'
            shapes.update({
                p + 'prob_net.weight': (1, c), p + 'prob_net.bias': (1, ),
                p + 'downsample.weight_net.0.weight': (4, 5),
                p + 'downsample.weight_net.0.bias': (4, ),
                p + 'downsample.weight_net.1.weight': (4, ),
                p + 'downsample.weight_net.1.bias': (4, ),
                p + 'downsample.norm.weight': (4 * c, ), p + 'downsample.norm.bias': (4 * c, ),
                p + 'downsample.linear.weight': (dims[i + 1], 4 * c),
                p + 'downsample.linear.bias': (dims[i + 1], ),
            })
        if seg:
            shapes.update({f'norm{i}.weight': (c, ), f'norm{i}.bias': (c, )})
    if num_classes:
        shapes.update({'norm.weight': (dims[-1], ), 'norm.bias': (dims[-1], ),
                       'head.weight': (num_classes, dims[-1]), 'head.bias': (num_classes, )})
    return shapes


def random_official_aff_state_dict(arch: str = 'mini', num_classes: int = 1000,
                                   seg: bool = False, seed: int = 0) -> Dict[str, Tensor]:
    """A state dict with the official names and shapes, filled with random values.

    Stands in for an official checkpoint where none can be downloaded (tests, the
    fidelity demo of ``tools/analysis/aff_official_top5.py``). Values keep activations
    of order one through the network: weights ``N(0, 1/fan_in)``, norm scales
    ``1 + 0.1 N(0, 1)``, biases and norm shifts ``0.1 N(0, 1)``, blank tokens ``N(0, 1)``
    (the official init), layer scales ``0.1 + 0.05 N(0, 1)``.

    Args:
        arch: a key of :data:`~fusion_necks.backbones.autofocusformer.AFF_ARCH_SETTINGS`.
        num_classes: > 0 adds the classifier's ``norm`` and ``head``.
        seg: the segmentation backbone's layout (``norm0..3`` and a ``backbone.``
            prefix) instead of the classifier's.
        seed: random seed.
    """
    from .autofocusformer import AFF_ARCH_SETTINGS  # the presets live with the model
    check_choice('arch', arch, sorted(AFF_ARCH_SETTINGS))
    g = torch.Generator().manual_seed(seed)
    state: Dict[str, Tensor] = OrderedDict()
    for name, shape in _official_shapes(AFF_ARCH_SETTINGS[arch], num_classes, seg).items():
        z = torch.randn(shape, generator=g)
        leaf = name.rsplit('.', 1)[-1]
        is_norm = re.search(r'(norm\d?|norm[12]|bn|weight_net\.1)\.weight$', name) is not None
        if leaf in ('blank_k', 'blank_v'):
            value = z
        elif leaf in ('gamma1', 'gamma2'):
            value = 0.1 + 0.05 * z
        elif name.endswith('running_var'):
            value = 1.0 + 0.1 * z.abs()
        elif leaf in ('bias', 'running_mean'):
            value = 0.1 * z
        elif is_norm:
            value = 1.0 + 0.1 * z
        else:
            value = z / math.sqrt(max(1, z[0].numel()))
        state[name] = value
    state['patch_embed.bn.num_batches_tracked'] = torch.tensor(0)
    if seg:
        state = OrderedDict(('backbone.' + k, v) for k, v in state.items())
    return state
