"""Chunked exact kNN between point sets."""
import pytest
import torch

from fusion_necks.ops.knn import knn


pytestmark = pytest.mark.usefixtures('single_thread')


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


def _reference_knn():
    """The kNN before the per-coordinate rewrite, kept by the op benchmark."""
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis', 'op_references',
                    'knn_v1.py')
    spec = importlib.util.spec_from_file_location('knn_v1', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.knn


@pytest.mark.parametrize('d', [2, 3])
def test_same_neighbours_as_the_previous_implementation_with_many_ties(d):
    """Integer grid queries against integer and half-integer means: many equidistant
    candidates. The per-coordinate distance is bit-identical to the summed broadcast
    difference, so indices (tie order included) and distances are identical, and the
    distances are those of a float64 brute force."""
    g = torch.Generator().manual_seed(1)
    q = torch.randint(0, 40, (2, 1500, d), generator=g).float()
    db = torch.randint(0, 80, (2, 300, d), generator=g).float() / 2
    mask = torch.rand(2, 300, generator=g) > 0.1
    ref = _reference_knn()
    for kw in ({}, {'database_mask': mask}, {'max_elements': 2 * 300 * 7}):
        dist, idx = knn(q, db, 9, **kw)
        rd, ri = ref(q, db, 9, **kw)
        assert torch.equal(idx, ri) and torch.equal(dist, rd)
    bf = torch.cdist(q.double(), db.double()).topk(9, dim=-1, largest=False).values
    torch.testing.assert_close(knn(q, db, 9)[0].double(), bf, rtol=0, atol=1e-5)


def test_float64_inputs_stay_float64():
    q = torch.rand(1, 10, 2, dtype=torch.float64)
    d, _ = knn(q, q, 3)
    assert d.dtype == torch.float64 and torch.all(d[..., 0] == 0)
