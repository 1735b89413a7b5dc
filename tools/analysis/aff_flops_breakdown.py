"""Where the FLOPs (MACs) of AutoFocusFormer go, and what a module-hook counter sees.

    python tools/analysis/aff_flops_breakdown.py [--arch mini] [--shape 224 224] [--kwargs JSON]
                                                 [--json FILE]

Counts ``fusion_necks.backbones.autofocusformer:autofocusformer_imagenet`` (the ImageNet
classifier, last-stage neighbourhood 49) with PyTorch's ``FlopCounterMode`` through
:func:`fusion_necks.analysis.complexity.count_flops` (the counter of
``tools/analysis/get_flops.py``) and groups the total:

- ``patch embedding``: the two 3x3 stride-2 convolutions;
- ``block Linears``: ``q``, ``kv``, ``proj`` and the MLP of every block;
- ``position bias``: ``Linear(5 -> heads)`` over every (token, neighbour) pair;
- ``neighbourhood attention``: ``q.k`` and ``p.v`` over the neighbours (our gather +
  batched matmul; the official CUDA kernels ``clustenqk``/``clustenav``);
- ``merge Linears``: importance score, weight net ``Linear(5 -> 4)``, ``Linear(4C -> C')``;
- ``merge aggregation``: ``sum_j w_j f_j^T`` over the neighbourhoods (official kernel
  ``clustenwf``);
- ``head``: the classifier.

Not counted by this counter (no matmul): kNN and clustering (differences, sorting, top-k),
softmax, LayerNorm, GELU, elementwise products (blank-token logit, score modulation).
The official FLOPs (ptflops for classification, fvcore for segmentation) come from
counters that do not see the custom CUDA kernels; the ``module-hook view`` line is the
total without the two kernel groups, i.e. what they can count of the same network.
Plain PyTorch: runs without mm*.
"""
import argparse
import json
import os
import sys
from typing import Dict

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

GROUPS = ('patch embedding', 'block Linears', 'position bias', 'neighbourhood attention',
          'merge Linears', 'merge aggregation', 'head', 'other')
KERNEL_GROUPS = ('neighbourhood attention', 'merge aggregation')


def _own(by_module: Dict[str, int], name: str) -> int:
    """MACs of ``name`` that none of its sub-modules account for."""
    total = by_module.get(name, 0)
    prefix = name + '.' if name else ''
    below = [k for k in by_module if k != name and k.startswith(prefix)]
    # outermost entered descendants (containers such as ModuleList have no entry of their own)
    outermost = [k for k in below if not any(o != k and k.startswith(o + '.') for o in below)]
    return total - sum(by_module[k] for k in outermost)


def group_flops(model, by_module: Dict[str, int]) -> Dict[str, int]:
    """Split the torch counter's per-module MACs of an AutoFocusFormer into :data:`GROUPS`."""
    from fusion_necks.backbones.aff_attention import AFFNeighbourhoodAttention
    from fusion_necks.backbones.aff_downsample import AFFAdaptiveDownsample
    out = {g: 0 for g in GROUPS}
    for name, m in model.named_modules():
        if name == '' or name not in by_module:
            continue
        own = _own(by_module, name)
        if not own:
            continue
        parent = name.rsplit('.', 1)[0] if '.' in name else ''
        parent_mod = model.get_submodule(parent) if parent else model
        if name.startswith('patch_embed'):
            g = 'patch embedding'
        elif name == 'head':
            g = 'head'
        elif isinstance(m, AFFNeighbourhoodAttention):
            g = 'neighbourhood attention'
        elif isinstance(m, AFFAdaptiveDownsample):
            g = 'merge aggregation'
        elif isinstance(parent_mod, AFFNeighbourhoodAttention):
            g = 'position bias' if name.endswith('rel_pos_bias') else 'block Linears'
        elif '.downsample.' in name:
            g = 'merge Linears'
        elif '.mlp.' in name or '.blocks.' in name:
            g = 'block Linears'
        else:
            g = 'other'
        out[g] += own
    out['other'] += _own(by_module, '') if '' in by_module else 0
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='mini')
    p.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'))
    p.add_argument('--kwargs', default='{}', help='more JSON keyword arguments of the model')
    p.add_argument('--json', default=None)
    args = p.parse_args(argv)

    import torch

    from fusion_necks.analysis.complexity import count_flops, count_parameters, human
    from fusion_necks.backbones.autofocusformer import autofocusformer_imagenet
    torch.manual_seed(0)
    model = autofocusformer_imagenet(args.arch, **json.loads(args.kwargs)).eval()
    x = torch.randn(1, 3, *args.shape)
    fc = count_flops(model, (x, ), backends=('torch', ))['torch']
    groups = group_flops(model, fc.by_module)
    assert sum(groups.values()) == fc.total, (groups, fc.total)
    hook_view = fc.total - sum(groups[g] for g in KERNEL_GROUPS)
    print(f'AFF-{args.arch} classifier, 1x3x{args.shape[0]}x{args.shape[1]}, '
          f'{count_parameters(model):,} params; MACs from torch FlopCounterMode')
    for g in GROUPS:
        print(f'  {g:26s} {human(groups[g]):>12s}  {100 * groups[g] / fc.total:5.1f}%')
    print(f'  {"total":26s} {human(fc.total):>12s}')
    print(f'module-hook view (total without the custom-kernel groups {" and ".join(KERNEL_GROUPS)}):'
          f' {human(hook_view)}')
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(arch=args.arch, shape=list(args.shape), total=fc.total, groups=groups,
                           module_hook_view=hook_view), f, indent=2)
    return dict(total=fc.total, groups=groups, module_hook_view=hook_view)


if __name__ == '__main__':
    main()
