"""Balanced space-filling clustering (AutoFocusFormer Sec. 3.1.1, design notes §3)."""
import pytest
import torch

from fusion_necks.ops.space_filling_cluster import (anchor_grid, snake_rank, space_filling_cluster,
                                                    space_filling_order)


pytestmark = pytest.mark.usefixtures('single_thread')


def test_snake_rank_is_boustrophedon():
    # row 0 left->right, row 1 right->left, row 2 left->right
    assert snake_rank(3, 3).tolist() == [[0, 1, 2], [5, 4, 3], [6, 7, 8]]
    assert snake_rank(2, 4).tolist() == [[0, 1, 2, 3], [7, 6, 5, 4]]


def test_anchor_grid_follows_cell_side():
    # k = ceil(16384 / 8) = 2048 anchors wanted on a 128 x 128 canvas: L = sqrt(8) -> 45 x 45
    assert anchor_grid(16384, 8, (128, 128)) == (45, 45)
    # 8 tokens of 2 -> k = 4 on 4 x 8: L = sqrt(8) -> round(1.41), round(2.83)
    assert anchor_grid(8, 2, (4, 8)) == (1, 3)


def test_order_single_row_distance_ratio():
    """Hand-computed: canvas 4 x 8, m = 2 -> 1 x 3 anchors at x = 0.83, 3.5, 6.17 (y = 1.5).

    Phantom anchors at x = -1.83 and 8.83. Ratios d_prev^2 / d_next^2:
    cell 0: t1 (0,3) 0.387, t5 (1,1) 1.27, t3 (2,0) 3.77
    cell 1: t7 (3,3) 0.566, t2 (4,1) 2.08, t4 (5,3) 5.43
    cell 2: t6 (6,2) 0.785, t0 (7,0) 2.58
    """
    pos = torch.tensor([[[7, 0], [0, 3], [4, 1], [2, 0], [5, 3], [1, 1], [6, 2], [3, 3]]])
    order = space_filling_order(pos, 2, (4, 8))
    assert order.tolist() == [[1, 5, 3, 7, 2, 4, 6, 0]]
    cl = space_filling_cluster(pos, 2, (4, 8))
    assert cl.member_mask is None
    sorted_pos = pos[0, cl.order[0]].float()
    assert torch.allclose(cl.cluster_mean_pos[0], sorted_pos.view(4, 2, 2).mean(1))


def test_order_follows_snake_and_reversed_rows():
    """Hand-computed: canvas 6 x 6 with 3 x 3 anchors (cells of 2); one token per cell plus a
    second token in the middle cell (rank 4, on the right-to-left row 1). There the previous
    anchor is the *right* neighbour (4.5, 2.5), so (3,3) (ratio 0.38) precedes (2,2) (2.6)."""
    pos = torch.tensor([[[3, 3], [0, 0], [5, 4], [1, 5], [4, 1], [2, 0], [1, 3], [5, 2], [3, 4],
                         [2, 2]]])
    order = space_filling_order(pos, 1, (6, 6))
    assert order.tolist() == [[1, 5, 4, 7, 0, 9, 6, 3, 8, 2]]


def test_order_is_per_image_and_a_permutation():
    g = torch.Generator().manual_seed(0)
    pos = torch.stack([torch.randperm(20 * 24, generator=g)[:150] for _ in range(3)])
    pos = torch.stack([pos % 24, pos // 24], -1)
    order = space_filling_order(pos, 8, (20, 24))
    assert torch.equal(order.sort(1).values, torch.arange(150).expand(3, -1))
    for b in range(3):  # an image alone gives the same order as inside the batch
        assert torch.equal(space_filling_order(pos[b:b + 1], 8, (20, 24))[0], order[b])


@pytest.mark.parametrize('n,m', [(150, 8), (37, 8), (64, 8), (5, 8)])
def test_clusters_exactly_balanced_padding_only_last(n, m):
    g = torch.Generator().manual_seed(n)
    lin = torch.stack([torch.randperm(300, generator=g)[:n] for _ in range(2)])
    pos = torch.stack([lin % 20, lin // 20], -1)
    cl = space_filling_cluster(pos, m, (15, 20))
    k = -(-n // m)
    assert cl.member_idx.shape == (2, k, m)
    assert cl.cluster_mean_pos.shape == (2, k, 2)
    pad = k * m - n
    if pad == 0:
        assert cl.member_mask is None
        valid = torch.ones(2, k, m, dtype=torch.bool)
    else:
        valid = cl.member_mask
        assert valid.shape == (2, k, m)
        assert valid[:, :-1].all()  # every cluster but the last is full
        assert valid[:, -1].sum(-1).tolist() == [m - pad] * 2
        assert not valid[:, -1, m - pad:].any()  # padding at the end of the last one
        assert (cl.member_idx[~valid] == 0).all()
    # members are the contiguous chunks of the reordered tokens, each token exactly once
    assert torch.equal(cl.member_idx[valid].view(2, n), torch.arange(n).expand(2, -1))
    sorted_pos = torch.stack([pos[b, cl.order[b]] for b in range(2)]).float()
    padded = torch.zeros(2, k * m, 2)
    padded[:, :n] = sorted_pos
    ref = padded.view(2, k, m, 2).sum(2) / valid.sum(-1, keepdim=True)
    assert torch.allclose(cl.cluster_mean_pos, ref)


def test_clusters_are_spatially_compact():
    """Balanced clusters of a full grid stay local: no cluster spans more than a few cells."""
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing='ij')
    pos = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).unsqueeze(0)
    cl = space_filling_cluster(pos, 8, (32, 32))
    members = pos[0, cl.order[0]].view(-1, 8, 2).float()
    spread = (members - members.mean(1, keepdim=True)).norm(dim=-1).max()
    assert spread < 4.0
