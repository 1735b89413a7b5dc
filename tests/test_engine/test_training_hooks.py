"""FusionStatsHook (logged numbers against direct computations) and ProgressBarHook."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fusion_necks.engine.fusion_stats_hook import FusionStatsHook, fusion_statistics
from fusion_necks.layers import ASFFLevelFusion, BAFF, FINE, fusion_weight_maps


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.asff = ASFFLevelFusion([8, 8, 8], 0)
        self.fine = FINE(8, head_dim=4)

    def forward(self, xs):
        return self.asff(xs), self.fine(xs[0], xs[1])


def test_statistics_match_the_recorded_maps():
    torch.manual_seed(0)
    net = Net().eval()
    xs = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    from fusion_necks.layers import iter_fusion_weight_maps, set_fusion_weight_recording
    set_fusion_weight_recording(net, True)
    out = net(xs)
    maps = {(n, m): t for n, m, t in iter_fusion_weight_maps(net)}
    stats = fusion_statistics(net)
    w = maps[('asff', 'weights')]
    assert stats['fusion/asff/w_mean'] == pytest.approx(1 / 3, abs=1e-6)   # softmax over 3
    assert stats['fusion/asff/w_std'] == pytest.approx(w.std().item())
    assert stats['fusion/asff/w_spread'] == pytest.approx((w.amax(1) - 1 / 3).mean().item())
    assert stats['fusion/fine/M_abs'] == pytest.approx(maps[('fine', 'M')].abs().mean().item())
    set_fusion_weight_recording(net, False)
    # recording does not change the outputs
    for a, b in zip(out, net(xs)):
        torch.testing.assert_close(a, b)


def test_baff_weights_at_constant_half():
    baff = BAFF(4, block_size=4)
    for p in baff.parameters():
        nn.init.zeros_(p)   # sigmoid(0) = 0.5 everywhere
    from fusion_necks.layers import set_fusion_weight_recording
    set_fusion_weight_recording(baff, True)
    baff(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8))
    stats = fusion_statistics(baff)
    assert stats['fusion//w_mean'] == pytest.approx(0.5) and stats['fusion//w_std'] == 0
    assert 'fusion//w_spread' not in stats   # one source: no spread over sources


def test_hook_logs_at_the_first_and_every_interval_iteration():
    torch.manual_seed(0)
    net = Net().train()
    logged = []
    hub = SimpleNamespace(update_scalar=lambda k, v: logged.append((k, v)))
    runner = SimpleNamespace(model=net, message_hub=hub, iter=0)
    hook = FusionStatsHook(interval=3)
    xs = [torch.randn(1, 8, 8, 8), torch.randn(1, 8, 4, 4), torch.randn(1, 8, 2, 2)]
    for it in range(7):
        runner.iter = it
        hook.before_train_iter(runner, it)
        net(xs)
        hook.after_train_iter(runner, it)
        # switched off again after each pass: no hooks left, no maps kept
        assert not net.fine._forward_hooks and not net.fine.attn._forward_hooks
        assert fusion_weight_maps(net.fine) == {}
    its = [it for it, _ in hook.history['fusion/fine/M_abs']]
    assert its == [1, 3, 6]
    assert {k for k, _ in logged} == {'train/' + k for k in hook.history}
    with pytest.raises(ValueError, match='interval'):
        FusionStatsHook(interval=0)


def test_progress_bar_lines_and_eta():
    import io
    from fusion_necks.engine.progress_hook import ProgressBarHook, progress_line
    line = progress_line(225, 450, 225 * 1.31)
    assert '|##########----------|' in line and '225/450' in line and '50%' in line
    assert '1.31 s/it' in line and 'ETA 4:55' in line    # 225 * 1.31 s = 294.75 s
    out = io.StringIO()    # not a terminal: a line every 25% and at the end
    hook = ProgressBarHook(stream=out, every_percent=25)
    runner = SimpleNamespace(iter=0, max_iters=8)
    hook.before_train(runner)
    for it in range(8):
        runner.iter = it
        hook.after_train_iter(runner, it)
    lines = out.getvalue().splitlines()
    assert [ln.split()[2] for ln in lines] == ['1/8', '3/8', '5/8', '7/8', '8/8']
    assert '100%' in lines[-1]


def test_hooks_are_registered_for_configs():
    import fusion_necks.registry  # noqa: F401  (the configs' custom_imports entry)
    from mmengine.registry import HOOKS
    from fusion_necks.engine.progress_hook import ProgressBarHook
    assert HOOKS.get('FusionStatsHook') is FusionStatsHook
    assert HOOKS.get('ProgressBarHook') is ProgressBarHook
    assert isinstance(HOOKS.build(dict(type='FusionStatsHook', interval=5)), FusionStatsHook)
