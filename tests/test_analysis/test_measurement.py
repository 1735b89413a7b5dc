"""fusion_necks.analysis: FLOP counting conventions, peak memory, timing statistics."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fusion_necks.analysis.complexity import (count_flops, count_parameters, module_total,
                                              parameters_by_module, sdpa_macs)
from fusion_necks.analysis.measure import PeakMemory, format_table, summarise, time_alternating
from fusion_necks.analysis.model_inputs import build_measurable, parse_shape


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.head = nn.ModuleList([nn.Linear(8, 4), nn.Linear(8, 4)])

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        return [self.forward_single(y, i) for i in range(2)]

    def forward_single(self, y, i):  # like mmdet heads: submodules called directly
        return self.head[i](y)


def test_both_counters_report_macs():
    model = Toy()
    x = torch.randn(2, 3, 10, 12)
    conv_macs = 2 * 8 * 10 * 12 * 3 * 3 * 3
    linear_macs = 2 * 2 * 8 * 4
    flops = count_flops(model, (x,))
    for backend, fc in flops.items():
        assert fc.total == conv_macs + linear_macs, backend
        assert module_total(fc.by_module, 'conv') == conv_macs
        # `head` is never entered through __call__: its total is its children's
        assert module_total(fc.by_module, 'head') == linear_macs
    assert count_parameters(model) == 3 * 8 * 9 + 2 * (8 * 4 + 4)
    assert parameters_by_module(model) == {'conv': 216, 'head': 72}


def test_attention_is_counted_by_both_counters():
    class Attn(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)
    q, k, v = torch.randn(2, 4, 30, 16), torch.randn(2, 4, 20, 16), torch.randn(2, 4, 20, 8)
    expected = 2 * 4 * 30 * 20 * (16 + 8)
    assert sdpa_macs(q.shape, k.shape, v.shape) == expected
    for backend, fc in count_flops(Attn(), (q, k, v)).items():
        assert fc.total == expected, backend


def test_custom_entry_point_keeps_module_names():
    model = Toy()
    x = torch.randn(1, 3, 8, 8)
    flops = count_flops(model, (x,), fn=lambda img: [model.conv(img)])
    for fc in flops.values():
        assert fc.total == 8 * 8 * 8 * 27 and module_total(fc.by_module, 'conv') == fc.total


def test_peak_memory_of_cpu_tensors():
    def work():
        a = torch.ones(1024, 1024)          # 4 MiB
        b = torch.ones(2048, 1024)          # 8 MiB, both alive
        del a
        c = torch.ones(1024, 1024)          # 4 MiB (a freed): peak stays 12 MiB
        return b.sum() + c.sum()
    with PeakMemory('cpu') as pm:
        work()
    assert pm.peak_mib == pytest.approx(12.0, abs=0.5)
    with pytest.raises(ValueError, match='method must be one of'):
        PeakMemory('cpu', method='guess')


def test_alternating_timings_and_ratio():
    calls = {'fast': lambda: torch.ones(10).sum(), 'slow': lambda: torch.ones(200, 200).mm(torch.ones(200, 200))}
    res = time_alternating(calls, runs=5, warmup=1)
    assert set(res) == {'fast', 'slow'}
    for t in res.values():
        assert t.runs == 5 and len(t.samples_ms) == 5 and t.min_ms <= t.median_ms <= t.max_ms
    table = format_table(list(res.values()), reference='fast')
    assert 'ratio' in table and 'slow' in table
    s = summarise('x', [4.0, 1.0, 3.0, 2.0, 5.0])
    assert s.median_ms == 3.0 and s.min_ms == 1.0 and s.max_ms == 5.0
    with pytest.raises(ValueError, match='runs must be >= 1'):
        time_alternating(calls, runs=0)


def test_callable_target_needs_only_torch():
    m = build_measurable('torch.nn:Conv2d', input_shapes=[parse_shape('1x3x16x16')],
                         kwargs=dict(in_channels=3, out_channels=4, kernel_size=3))
    assert isinstance(m.module, nn.Conv2d) and m.inputs[0].shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="needs --inputs"):
        build_measurable('torch.nn:Conv2d', kwargs=dict(in_channels=3, out_channels=4, kernel_size=3))
    with pytest.raises(ValueError, match='positive'):
        parse_shape('1,0,3')
    with pytest.raises(ValueError, match="'pkg.module:callable'"):
        build_measurable('torch.nn.Conv2d', input_shapes=[(1, 3, 4, 4)])
