"""AutoFocusFormer (AFF): a local-attention backbone with adaptive downsampling.

Ziwen Chen, Kaushik Patnaik, Shuangfei Zhai, Alvin Wan, Zhile Ren, Alex Schwing, Alex
Colburn, Li Fuxin. "AutoFocusFormer: Image Segmentation off the Grid". CVPR 2023
(arXiv 2304.12406). Plain PyTorch: no custom CUDA kernels, no pykeops, no OpenMMLab.
"""
import copy
from collections.abc import Mapping
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..ops.point_features import PointFeatures, stage_stride
from ..ops.rel_pos_features import REL_POS_ORDERS
from ..utils.validation import check_choice
from .aff_official_weights import convert_official_aff, is_official_state_dict, unwrap_checkpoint
from .aff_downsample import DownsampleResult
from .aff_patch_embed import AFFPatchEmbed
from .aff_stage import AFFStage

#: Table 1 of the paper and the official configs (apple/ml-autofocusformer ``configs/``).
#: ``drop_path_rate`` is the ImageNet value; the segmentation configs use 0.3 for Tiny/Small.
AFF_ARCH_SETTINGS = {
    'mini': dict(embed_dims=(32, 128, 256, 384), depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16),
                 mlp_ratio=2.0, layer_scale=0.0, drop_path_rate=0.0, ds_rate=0.25),
    'tiny': dict(embed_dims=(64, 128, 256, 512), depths=(3, 4, 18, 5), num_heads=(2, 4, 8, 16),
                 mlp_ratio=3.0, layer_scale=0.0, drop_path_rate=0.2, ds_rate=0.25),
    'small': dict(embed_dims=(96, 192, 384, 768), depths=(3, 4, 18, 2), num_heads=(3, 6, 12, 24),
                  mlp_ratio=3.0, layer_scale=1e-5, drop_path_rate=0.3, ds_rate=0.25),
    'base': dict(embed_dims=(128, 256, 512, 1024), depths=(3, 4, 18, 2), num_heads=(4, 8, 16, 32),
                 mlp_ratio=3.0, layer_scale=1e-5, drop_path_rate=0.2, ds_rate=0.25),
}
for _name in ('mini', 'tiny', 'small', 'base'):
    AFF_ARCH_SETTINGS[f'{_name}_1_5th'] = dict(AFF_ARCH_SETTINGS[_name], ds_rate=0.2)


def _per_stage(value, num_stages: int, name: str) -> tuple:
    if isinstance(value, (int, float)):
        return (value, ) * num_stages
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} must be a number or {num_stages} values, got {value}')
    return value


class AutoFocusFormerNet(nn.Module):
    """AutoFocusFormer backbone (paper Fig. 2, Table 1).

    ``patch embedding (stride 4) -> 4 stages``; each stage clusters its tokens
    (space-filling balanced clustering), runs local-attention blocks over the
    neighbourhoods given by the nearest clusters, and (except the last) adaptively
    downsamples to ``ds_rate`` of its tokens by learnable neighbourhood merging. At a
    512x512 input the stages hold 16384/4096/1024/256 tokens (``ds_rate = 1/4``) or
    16384/3276/655/131 (``1/5``).

    Outputs (``forward``):
        * ``num_classes > 0``: ``B x num_classes`` logits (final LayerNorm on the last
          stage, mean over tokens, Linear), the ImageNet model of the paper.
        * otherwise a tuple with one entry per ``out_indices`` stage, each after its own
          LayerNorm (as the official segmentation backbone): a :class:`PointFeatures`
          (``feat B x N x C``, int64 ``pos B x N x 2`` on the stride-4 canvas, ``canvas``,
          nominal ``stride``), or with ``out_dense=True`` a dense ``B x C x H_s x W_s``
          map rasterised by inverse-distance interpolation
          (:func:`~fusion_necks.ops.points_to_dense`) for standard FPN/UPerHead heads.

    Args:
        arch: ``'mini' | 'tiny' | 'small' | 'base'`` or their ``*_1_5th`` variants (1/5
            downsampling rate); any explicit argument below overrides the preset.
        in_channels: image channels.
        embed_dims, depths, num_heads, mlp_ratio: per-stage widths, blocks, heads, MLP ratio.
        cluster_size: tokens per cluster (8 in the paper; 24 for the released Base-384).
        nbhd_size: neighbourhood size per stage, int or one per stage (48; the paper
            switches to global attention in the last stage for ImageNet at 224, i.e.
            ``(48, 48, 48, 49)``; 144 with ``cluster_size=24``). A stage whose
            neighbourhood covers all its tokens attends globally.
        ds_rate: fraction of tokens kept by each downsampling (1/4 or 1/5).
        alpha: weight of the importance score against the grid prior (4; 8 on Cityscapes).
        grid_prior, reserve_tokens, blank_token, expanded_rel_pos: the ablation switches
            of paper Table 5 (all on in the full model).
        rel_pos_order: ``'paper'`` (default; ``[dx, dy, d, dx/d, dy/d]``, paper Sec. 4.2)
            or ``'official'`` (``[dx, dy, d, dy/d, dx/d]``, the public code); see
            :mod:`fusion_necks.ops.rel_pos_features`.
        layer_scale: layer-scale init (0 = off; 1e-5 for Small/Base).
        drop_rate: dropout after the patch embedding, attention projection and MLP.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.
        patch_norm: LayerNorm after the patch embedding.
        out_indices: stages to output (default all four; none with a classification head).
        out_norm: a LayerNorm on every output stage.
        out_dense: return dense maps instead of :class:`PointFeatures`.
        dense_k, dense_power: neighbours and inverse-distance power of the rasteriser.
        num_classes: > 0 adds the classification head.
        max_elements: memory bound (elements per chunk) of the point ops.
        with_cp: activation checkpointing of the blocks (training memory for speed).
        rules: ``'exact'`` (default) or ``'official'``: how four discrete choices are
            made (token order of the clustering, kNN ties, masking of padded slots,
            order of the merged tokens). ``'exact'`` is deterministic and
            batch-invariant (an image's output does not depend on the other images of
            its batch); ``'official'`` follows the official code operation for
            operation, so that its converted checkpoints give its outputs (including
            its batch dependence through the clustering's batch-wide sort key). See
            :class:`~fusion_necks.backbones.aff_stage.AFFStage` and
            ``docs/autofocusformer.md``.

    Official checkpoints (apple/ml-autofocusformer, ``{'model': ...}``, or the
    ``backbone.*`` tensors of apple/ml-autofocusformer-segmentation) can be passed to
    ``load_state_dict`` (or an mmengine ``Pretrained`` init) as they are: a load hook
    recognises their names and converts them
    (:func:`~fusion_necks.backbones.aff_official_weights.convert_official_aff`).
    """

    def __init__(self,
                 arch: str = 'tiny',
                 in_channels: int = 3,
                 embed_dims: Optional[Sequence[int]] = None,
                 depths: Optional[Sequence[int]] = None,
                 num_heads: Optional[Sequence[int]] = None,
                 mlp_ratio: Optional[float] = None,
                 cluster_size: int = 8,
                 nbhd_size: Union[int, Sequence[int]] = 48,
                 ds_rate: Optional[float] = None,
                 alpha: float = 4.0,
                 grid_prior: bool = True,
                 reserve_tokens: bool = True,
                 blank_token: bool = True,
                 expanded_rel_pos: bool = True,
                 rel_pos_order: str = 'paper',
                 layer_scale: Optional[float] = None,
                 drop_rate: float = 0.0,
                 drop_path_rate: Optional[float] = None,
                 patch_norm: bool = True,
                 out_indices: Optional[Sequence[int]] = None,
                 out_norm: bool = True,
                 out_dense: bool = False,
                 dense_k: int = 4,
                 dense_power: float = 2.0,
                 num_classes: int = 0,
                 max_elements: int = 1 << 22,
                 with_cp: bool = False,
                 rules: str = 'exact') -> None:
        super().__init__()
        check_choice('arch', arch, sorted(AFF_ARCH_SETTINGS))
        preset = copy.deepcopy(AFF_ARCH_SETTINGS[arch])
        embed_dims = tuple(embed_dims if embed_dims is not None else preset['embed_dims'])
        num_stages = len(embed_dims)
        depths = _per_stage(depths if depths is not None else preset['depths'], num_stages,
                            'depths')
        num_heads = _per_stage(num_heads if num_heads is not None else preset['num_heads'],
                               num_stages, 'num_heads')
        nbhd_size = _per_stage(nbhd_size, num_stages, 'nbhd_size')
        mlp_ratio = preset['mlp_ratio'] if mlp_ratio is None else mlp_ratio
        ds_rate = preset['ds_rate'] if ds_rate is None else ds_rate
        layer_scale = preset['layer_scale'] if layer_scale is None else layer_scale
        drop_path_rate = preset['drop_path_rate'] if drop_path_rate is None else drop_path_rate
        for i, (c, h) in enumerate(zip(embed_dims, num_heads)):
            if c % h:
                raise ValueError(f'embed_dims[{i}]={c} must be divisible by num_heads[{i}]={h}')
        if not 0.0 < ds_rate <= 1.0:
            raise ValueError(f'ds_rate must be in (0, 1], got {ds_rate}')
        check_choice('rel_pos_order', rel_pos_order, REL_POS_ORDERS)
        if out_indices is None:
            out_indices = () if num_classes > 0 else tuple(range(num_stages))
        out_indices = tuple(i % num_stages for i in out_indices)
        if num_classes <= 0 and not out_indices:
            raise ValueError('out_indices must name at least one stage when num_classes == 0')

        self.arch = arch
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_stages = num_stages
        self.out_indices = out_indices
        self.out_dense = out_dense
        self.dense_k = dense_k
        self.dense_power = dense_power
        self.num_classes = num_classes
        self.ds_rate = ds_rate

        self.patch_embed = AFFPatchEmbed(in_channels, embed_dims[0], patch_norm)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(num_stages):
            down = None
            if i < num_stages - 1:
                down = dict(out_dim=embed_dims[i + 1], ds_rate=ds_rate, alpha=alpha,
                            grid_prior=grid_prior, reserve=reserve_tokens)
            self.stages.append(
                AFFStage(
                    dim=embed_dims[i],
                    depth=depths[i],
                    num_heads=num_heads[i],
                    mlp_ratio=mlp_ratio,
                    cluster_size=cluster_size,
                    nbhd_size=nbhd_size[i],
                    drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
                    layer_scale=layer_scale,
                    blank_token=blank_token,
                    expanded_rel_pos=expanded_rel_pos,
                    rel_pos_order=rel_pos_order,
                    drop=drop_rate,
                    downsample=down,
                    max_elements=max_elements,
                    with_cp=with_cp,
                    rules=rules))
        self.out_norms = nn.ModuleDict({
            str(i): (nn.LayerNorm(embed_dims[i]) if out_norm else nn.Identity())
            for i in out_indices
        })
        if num_classes > 0:
            self.norm = nn.LayerNorm(embed_dims[-1])
            self.head = nn.Linear(embed_dims[-1], num_classes)
        self.rel_pos_order = rel_pos_order
        self.rules = rules
        self.reset_parameters()
        self.register_load_state_dict_pre_hook(AutoFocusFormerNet._convert_official_on_load)

    @staticmethod
    def _convert_official_on_load(module: 'AutoFocusFormerNet', state_dict: dict, prefix: str,
                                  *args) -> None:
        """Rename an official state dict in place (only when it looks official)."""
        own = {k[len(prefix):]: state_dict[k] for k in list(state_dict) if k.startswith(prefix)}
        nested = own.get('model')
        if isinstance(nested, Mapping):  # a raw official training checkpoint
            own = dict(unwrap_checkpoint(nested))
        if not is_official_state_dict(own):
            return
        converted, _ = convert_official_aff(own, module.rel_pos_order)
        for k in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[k]
        for k, v in converted.items():
            state_dict[prefix + k] = v

    def reset_parameters(self) -> None:
        """Official init: truncated-normal(0.02) Linear weights, zero biases, LayerNorm
        (1, 0); blank tokens stay ``randn`` and convolutions keep PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: Tensor) -> List[Tuple[PointFeatures, Optional[DownsampleResult]]]:
        """Run the network; per stage, its raw (un-normed) :class:`PointFeatures` and,
        for stages with downsampling, the :class:`DownsampleResult` (importance ``score``
        ``B x N`` in the stage's token order, ``kept_idx`` ``B x N'``), else None."""
        feat, pos, canvas = self.patch_embed(x)
        tokens = PointFeatures(self.pos_drop(feat), pos, canvas, stage_stride(0), grid=canvas)
        outs = []
        for i, stage in enumerate(self.stages):
            out, down = stage(tokens, on_grid=(i == 0))
            outs.append((out, down))
            if down is not None:
                tokens = PointFeatures(down.feat, down.pos, canvas, stage_stride(i + 1))
        return outs

    def forward(self, x: Tensor):
        stages = self.forward_stages(x)
        if self.num_classes > 0:
            return self.head(self.norm(stages[-1][0].feat).mean(1))
        outs = []
        for i in self.out_indices:
            tokens = stages[i][0]
            tokens = tokens._replace(feat=self.out_norms[str(i)](tokens.feat))
            outs.append(tokens.to_dense(self.dense_k, self.dense_power) if self.out_dense
                        else tokens)
        return tuple(outs)


def autofocusformer_imagenet(arch: str = 'mini', num_classes: int = 1000,
                             nbhd_size: Union[int, Sequence[int]] = (48, 48, 48, 49),
                             **kwargs) -> AutoFocusFormerNet:
    """The ImageNet classifier of the paper (Table 1, Table 3), for parameter and FLOP counts.

    ``AutoFocusFormerNet(arch, num_classes=1000, nbhd_size=(48, 48, 48, 49))``: the official
    classification configs use a last-stage neighbourhood of 49, so at 224x224 (3136 ->
    784 -> 196 -> 49 tokens) the last stage attends globally. Made for the callable
    targets of the measurement tools, e.g.
    ``python tools/analysis/get_flops.py
    fusion_necks.backbones.autofocusformer:autofocusformer_imagenet --inputs 1,3,224,224``.

    Args:
        arch: preset name (see :data:`AFF_ARCH_SETTINGS`).
        num_classes: classes of the linear head.
        nbhd_size: per-stage neighbourhood sizes.
        **kwargs: any other :class:`AutoFocusFormerNet` argument.
    """
    return AutoFocusFormerNet(arch, num_classes=num_classes, nbhd_size=nbhd_size, **kwargs)
