"""ONNX export of a detector's or segmentor's ``tensor`` mode, checked with onnxruntime.

The exported graph is what mmdeploy calls the network: ``model._forward(img)`` (backbone,
neck, head outputs; no NMS, no resizing of the logits), with the input *after* the data
preprocessor's normalisation, ``(N, 3, H, W)`` float32. Inside the graph the input is
zero-padded at the bottom/right to a multiple of ``pad_divisor`` (32, as the detectors'
data preprocessor pads), so that every stride-32 level has integer sizes and the shape
arithmetic of the traced graph holds for any ``H, W`` with ``--dynamic``; the outputs are
those of the padded image, as in the PyTorch pipeline.

Two rewrites make upstream modules traceable (each logged when applied, numbers unchanged):
``revert_sync_batchnorm`` (SyncBN has no ONNX export) and mmseg's ``Upsample`` wrapper,
which turns sizes into Python ints (a constant in the trace), replaced by
``nn.Upsample(scale_factor=...)``.

AutoFocusFormer cannot be exported: its token clustering and merging produce
data-dependent shapes and orders (``argsort`` over space-filling-curve keys, ``topk`` of
learned importance, neighbourhoods found by kNN), which the tracer would freeze to the
export image. :func:`check_exportable` says so in one line.
"""
import os
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

_AFF_REASON = (
    'AutoFocusFormer is not exportable to ONNX: its clustering (argsort of '
    'space-filling-curve keys), adaptive merging (topk of learned importance) and kNN '
    'neighbourhoods give data-dependent token orders and counts that a traced graph '
    'would freeze to the export image')

# one line per model family that cannot be exported, keyed by a module class name in it
# (the registered AutoFocusFormer and the plain AutoFocusFormerNet it subclasses)
NOT_EXPORTABLE = {
    'AutoFocusFormer': _AFF_REASON,
    'AutoFocusFormerNet': _AFF_REASON,
    'PointMSDeformAttnPixelDecoder': (
        'the point Mask2Former pixel decoder is not exportable to ONNX: it works on the '
        "AutoFocusFormer's irregular tokens (kNN over data-dependent positions)"),
}


class ExportNotSupported(RuntimeError):
    """The model contains a module that cannot be traced to a faithful ONNX graph."""


def check_exportable(model: nn.Module) -> None:
    for m in model.modules():
        reason = NOT_EXPORTABLE.get(type(m).__name__)
        if reason:
            raise ExportNotSupported(reason)


def _flatten(out) -> List[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    flat: List[Tensor] = []
    for o in out:
        flat.extend(_flatten(o))
    return flat


def output_names(out, prefix: str = 'output') -> List[str]:
    """``output_0_3``: index path into the nested tuple ``model._forward`` returns."""
    if isinstance(out, Tensor):
        return [prefix]
    names: List[str] = []
    for i, o in enumerate(out):
        names.extend(output_names(o, f'{prefix}_{i}'))
    return names


class TensorModeWrapper(nn.Module):
    """``img (N, 3, H, W)`` -> flat tuple of the model's ``tensor``-mode outputs.

    Args:
        model: an mmdet detector or mmseg segmentor (anything with ``_forward(img)``).
        pad_divisor: pad H and W up to a multiple of this inside the graph (0: no padding).
    """

    def __init__(self, model: nn.Module, pad_divisor: int = 32):
        super().__init__()
        if pad_divisor < 0:
            raise ValueError(f'pad_divisor must be >= 0, got {pad_divisor}')
        self.model = model
        self.pad_divisor = pad_divisor

    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        if self.pad_divisor:
            d = self.pad_divisor
            h, w = img.shape[-2:]
            img = F.pad(img, (0, (d - w % d) % d, 0, (d - h % d) % d))
        return tuple(_flatten(self.model._forward(img)))


class _TraceableUpsample(nn.Module):
    """mmseg's ``Upsample(scale_factor=s)`` with the size left to ``F.interpolate``."""

    def __init__(self, scale_factor, mode: str, align_corners):
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode,
                             align_corners=self.align_corners)


def make_traceable(model: nn.Module) -> List[str]:
    """Apply the rewrites of the module docstring in place; returns what was changed."""
    from mmengine.model import revert_sync_batchnorm
    changes = []
    if any(isinstance(m, nn.SyncBatchNorm) for m in model.modules()):
        revert_sync_batchnorm(model)
        changes.append('SyncBN -> BN')
    try:
        from mmseg.models.utils import Upsample as SegUpsample
    except ImportError:
        SegUpsample = None
    if SegUpsample is not None:
        n = 0
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is SegUpsample and not child.size and child.scale_factor:
                    setattr(parent, name, _TraceableUpsample(child.scale_factor, child.mode,
                                                             child.align_corners))
                    n += 1
        if n:
            changes.append(f'{n} mmseg Upsample -> F.interpolate(scale_factor)')
    return changes


def export_onnx(wrapper: nn.Module, shape: Sequence[int], out_file: str, opset: int = 17,
                dynamic: bool = False, batch: int = 1) -> List[str]:
    """Trace ``wrapper`` at ``(batch, 3, H, W)`` and write ``out_file`` atomically.

    Returns the output names. ``dynamic`` makes N, H and W symbolic. Raises
    :class:`ExportNotSupported` if an operator has no export at ``opset`` (the minimum
    opsets are in docs/deployment.md: FINE 14, BAFF 13, ASFF and FPN 11), and
    ``RuntimeError`` if the graph uses an operator outside the default ONNX domain.
    """
    import onnx
    h, w = shape
    x = torch.randn(batch, 3, h, w)
    with torch.no_grad():
        names = output_names(wrapper(x))
    dyn = None
    if dynamic:
        dyn = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        dyn.update({n: {0: 'batch'} for n in names})
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=out_dir, prefix='.tmp_')
    os.close(fd)
    try:
        try:
            torch.onnx.export(wrapper, (x,), tmp, opset_version=opset, dynamo=False,
                              input_names=['input'], output_names=names, dynamic_axes=dyn,
                              do_constant_folding=True)
        except torch.onnx.errors.OnnxExporterError as e:
            # e.g. scaled_dot_product_attention needs opset 14: say it in one line
            first = str(e).strip().splitlines()[0]
            raise ExportNotSupported(f'opset {opset}: {first}') from e
        proto = onnx.load(tmp)
        onnx.checker.check_model(proto)
        custom = sorted({n.op_type for n in proto.graph.node if n.domain not in ('', 'ai.onnx')})
        if custom:
            raise RuntimeError(f'the exported graph uses custom operators {custom}')
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return names


def ort_session(onnx_file: str, threads: Optional[int] = None, device: str = 'cpu'):
    """An onnxruntime session with all graph optimisations.

    Args:
        onnx_file: the exported model.
        threads: intra-op threads (default: as many as torch uses, so that timings
            against PyTorch compare like with like); inter-op parallelism is off.
        device: 'cpu', or 'cuda' (needs onnxruntime-gpu: the CUDA provider first).
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ['CPUExecutionProvider']
    if str(device).startswith('cuda'):
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise RuntimeError('device cuda: this onnxruntime has no CUDAExecutionProvider '
                               f'(available: {ort.get_available_providers()}); install '
                               'onnxruntime-gpu')
        providers.insert(0, 'CUDAExecutionProvider')
    return ort.InferenceSession(onnx_file, sess_options=opts, providers=providers)


def verify_onnx(onnx_file: str, wrapper: nn.Module, shapes: Sequence[Sequence[int]],
                atol: float = 1e-4, seed: int = 0) -> Dict[str, float]:
    """Run onnxruntime and PyTorch on the same random input at each ``(N, 3, H, W)``.

    Returns ``{'NxHxW': max abs difference over all outputs}``; raises ``AssertionError``
    naming the output and shape where the difference exceeds ``atol``.
    """
    import numpy as np
    sess = ort_session(onnx_file)
    names = [o.name for o in sess.get_outputs()]
    gen = torch.Generator().manual_seed(seed)
    report = {}
    for shape in shapes:
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            ref = [r.numpy() for r in wrapper(x)]
        got = sess.run(None, {'input': x.numpy()})
        if len(got) != len(ref):
            raise AssertionError(f'{len(got)} onnxruntime outputs, {len(ref)} from PyTorch')
        worst = 0.0
        for name, a, b in zip(names, got, ref):
            if a.shape != b.shape:
                raise AssertionError(f'{name} at {tuple(shape)}: onnxruntime {a.shape}, '
                                     f'PyTorch {b.shape}')
            diff = float(np.abs(a - b).max()) if a.size else 0.0
            if not diff <= atol:
                raise AssertionError(f'{name} at {tuple(shape)}: max abs difference {diff:.3g} '
                                     f'> {atol:g}')
            worst = max(worst, diff)
        report['x'.join(map(str, shape))] = worst
    return report
