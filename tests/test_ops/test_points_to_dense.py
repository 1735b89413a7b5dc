"""Rasterising point tokens onto dense stride-s grids."""
import pytest
import torch

from fusion_necks.ops.points_to_dense import dense_grid_centres, points_to_dense


pytestmark = pytest.mark.usefixtures('single_thread')


def test_full_grid_is_an_exact_scatter():
    g = torch.Generator().manual_seed(0)
    h, w = 5, 7
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
    perm = torch.randperm(h * w, generator=g)
    feat = torch.randn(1, h * w, 3, generator=g)
    dense = points_to_dense(feat[:, perm], pos[perm].unsqueeze(0), (h, w), stride=4)
    torch.testing.assert_close(dense, feat[0].T.reshape(1, 3, h, w))


def test_sparse_tokens_grid_sizes_and_values():
    canvas = (13, 10)  # not a multiple of anything
    centres, hs, ws = dense_grid_centres(canvas, 4)
    assert (hs, ws) == (4, 3)
    assert centres[0].tolist() == [1.5, 1.5] and centres[-1].tolist() == [9.5, 13.5]
    pos = torch.tensor([[[0, 0], [9, 12], [4, 6], [2, 11]]])
    feat = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]]])
    for stride in (8, 16, 32):
        dense = points_to_dense(feat, pos, canvas, stride=stride)
        f = stride // 4
        assert dense.shape == (1, 2, -(-13 // f), -(-10 // f))
        assert (dense[:, 1] == 0).all()
        assert dense[:, 0].min() >= 1.0 and dense[:, 0].max() <= 4.0  # convex combination
    # stride 4 with sparse tokens: cells holding a token take exactly its feature
    dense = points_to_dense(feat, pos, canvas, stride=4)
    assert dense.shape == (1, 2, 13, 10)
    assert dense[0, 0, 12, 9] == 2.0 and dense[0, 0, 6, 4] == 3.0 and dense[0, 0, 11, 2] == 4.0


def test_point_features_stride_rule_and_dense_grid():
    """One stride rule (spacing = stride // canvas_stride, stage i at 4 * 2^i) and the
    dense-grid wrapper: to_dense is a reshape that round-trips a B x C x H x W map."""
    from fusion_necks.ops.point_features import PointFeatures, stage_stride
    assert [stage_stride(i) for i in range(4)] == [4, 8, 16, 32]
    x = torch.randn(2, 3, 5, 7)
    ys, xs = torch.meshgrid(torch.arange(5), torch.arange(7), indexing='ij')
    pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).expand(2, -1, -1) * 2
    pf = PointFeatures(x.flatten(2).transpose(1, 2), pos, (10, 14), 8, grid=(5, 7))
    assert pf.spacing == 2
    assert torch.equal(pf.to_dense(), x)
    # the same tokens as irregular points rasterise onto the same grid (exact at cell
    # positions: each target cell holds a token)
    torch.testing.assert_close(pf._replace(grid=None).to_dense(k=1), x)
