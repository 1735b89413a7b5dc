"""Inverse-distance (Shepard) interpolation with a power argument."""
import pytest
import torch

from fusion_necks.ops.inverse_distance import inverse_distance_interpolate, inverse_distance_weights


pytestmark = pytest.mark.usefixtures('single_thread')


def test_weights_formula_power_and_normalisation():
    q = torch.tensor([[[0.0, 0.0]]])
    nbr = torch.tensor([[[[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]]])  # distances 1, 2, 5
    for power in (1.0, 2.0, 6.0):
        w = inverse_distance_weights(q, nbr, power=power)
        raw = torch.tensor([1.0, 2.0, 5.0]) ** -power
        torch.testing.assert_close(w[0, 0], raw / raw.sum())


def test_learnable_power_gets_gradient_and_coincident_point_is_exact():
    power = torch.tensor(6.0, requires_grad=True)
    pos = torch.tensor([[[0, 0], [4, 0], [0, 4], [4, 4], [9, 9]]])
    feat = torch.tensor([[[1.0], [2.0], [3.0], [4.0], [100.0]]])
    query = torch.tensor([[[4.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    out = inverse_distance_interpolate(query, pos, feat, k=4, power=power)
    assert abs(out[0, 0, 0].item() - 2.0) < 1e-6  # a query on a token returns it
    # (1,1): 4 nearest are the square corners at d^2 = 2, 10, 10, 18
    d = torch.tensor([2.0, 10.0, 10.0, 18.0]).sqrt()
    w = d ** -6.0
    ref = (w * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum() / w.sum()
    torch.testing.assert_close(out[0, 1, 0], ref)
    out[0, 1, 0].backward()
    assert power.grad is not None and power.grad.abs() > 0
    assert query.grad is not None and query.grad[0, 1].abs().sum() > 0


def test_constant_field_is_reproduced_and_batches_are_independent():
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 50, (2, 30, 2), generator=g)
    feat = torch.full((2, 30, 3), 7.0)
    feat[1] = -1.0
    query = torch.rand(2, 11, 2, generator=g) * 50
    out = inverse_distance_interpolate(query, pos, feat, k=4, power=2.0)
    torch.testing.assert_close(out[0], torch.full((11, 3), 7.0))
    torch.testing.assert_close(out[1], torch.full((11, 3), -1.0))
