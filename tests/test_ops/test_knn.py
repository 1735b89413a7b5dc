"""Chunked exact kNN between point sets."""
import pytest
import torch

from fusion_necks.ops.knn import knn


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Small tensors: one intra-op thread avoids OpenMP oversubscription on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_matches_brute_force_and_is_chunk_invariant():
    g = torch.Generator().manual_seed(0)
    q = torch.rand(2, 300, 2, generator=g) * 100
    db = torch.rand(2, 70, 2, generator=g) * 100
    ref_d, ref_i = torch.cdist(q.double(), db.double()).topk(5, dim=-1, largest=False)
    for max_elements in (1 << 24, 2 * 70 * 2 * 7):  # one chunk / 43 chunks
        d, i = knn(q, db, 5, max_elements=max_elements)
        assert torch.equal(i, ref_i)
        torch.testing.assert_close(d, ref_d.float())
        assert (d[..., 1:] >= d[..., :-1]).all()


def test_integer_positions_second_neighbour_is_nearest_other_token():
    pos = torch.tensor([[[0, 0], [4, 0], [0, 3], [10, 10]]])
    d, i = knn(pos, pos, 2)
    assert i[0, :, 0].tolist() == [0, 1, 2, 3]  # self first
    # (10,10): nearest other token is (4,0) at sqrt(36 + 100)
    assert d[0, :, 1].tolist() == [3.0, 4.0, 3.0, pytest.approx(136 ** 0.5)]
    assert i[0, :, 1].tolist() == [2, 0, 0, 1]


def test_database_mask_and_bad_k():
    q = torch.zeros(1, 1, 2)
    db = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [5.0, 0.0]]])
    _, i = knn(q, db, 2, database_mask=torch.tensor([[False, True, True]]))
    assert i.tolist() == [[[1, 2]]]
    with pytest.raises(ValueError, match='k must be'):
        knn(q, db, 4)
