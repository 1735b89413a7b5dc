"""Fixtures of the point-based pixel decoder tests."""
import pytest
import torch


@pytest.fixture(autouse=True, scope='module')
def _single_thread():
    """Many small ops: one intra-op thread avoids OpenMP oversubscription on a shared machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
