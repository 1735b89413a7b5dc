"""A benchmark target that runs a model's ONNX export in onnxruntime.

``tools/analysis/benchmark.py --backend torch onnxruntime`` times the same network,
on the same input, once in PyTorch and once as the graph that
``tools/deployment/pytorch2onnx.py`` writes (the ``tensor`` mode, see
:mod:`fusion_necks.deployment.onnx_export`), alternating the two. The graph is exported
*static* at the benchmark's input size (what a deployment at a fixed size runs) from a
copy of the model, so the PyTorch target keeps its own modules untouched.
"""
import copy
import os.path as osp
from typing import Optional, Tuple

import numpy as np
import torch

from fusion_necks.analysis.model_inputs import Measurable
from fusion_necks.deployment.onnx_export import (TensorModeWrapper, check_exportable,
                                                 export_onnx, make_traceable, ort_session)


def onnxruntime_target(m: Measurable, onnx_file: str, threads: Optional[int] = None,
                       device: str = 'cpu', opset: int = 17) -> Tuple[Measurable, float]:
    """``m`` (a whole model in ``tensor`` mode) as an onnxruntime call.

    Args:
        m: from ``build_measurable(config, part='model', mode='tensor')``; its input
            is already padded like the data preprocessor pads, so the graph adds none.
        onnx_file: where the export is written.
        threads: onnxruntime intra-op threads (default: torch's).
        device: 'cpu' or 'cuda' (the onnxruntime execution provider).
        opset: ONNX opset of the export.

    Returns:
        The target, and the max abs difference between its outputs and PyTorch's on
        the benchmark input (a check that the two time the same computation).
    """
    x = m.inputs[0]
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError('onnxruntime_target needs a config target of part=model (an image '
                         f'input), got inputs {m.input_desc}')
    model = copy.deepcopy(m.module).cpu().eval()
    check_exportable(model)
    make_traceable(model)
    wrapper = TensorModeWrapper(model, pad_divisor=0).eval()
    export_onnx(wrapper, tuple(x.shape[-2:]), onnx_file, opset=opset, batch=int(x.shape[0]))
    sess = ort_session(onnx_file, threads=threads, device=device)
    feed = {'input': x.detach().cpu().numpy()}
    got = sess.run(None, feed)
    with torch.inference_mode():
        ref = [r.numpy() for r in wrapper(x.cpu())]
    diff = max((float(np.abs(a - b).max()) for a, b in zip(got, ref) if a.size), default=0.0)
    if len(got) != len(ref) or any(a.shape != b.shape for a, b in zip(got, ref)):
        raise AssertionError(f'{m.name}: onnxruntime outputs {[a.shape for a in got]} differ '
                             f'from PyTorch {[b.shape for b in ref]}')
    call = lambda feed: sess.run(None, feed)  # noqa: E731
    name = osp.splitext(osp.basename(onnx_file))[0]
    return Measurable(name, m.module, call, (feed,), m.input_desc), diff
