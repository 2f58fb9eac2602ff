"""Shared fixtures of the view-tools tests (I_NCE estimator, flow views, sweeps)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run ~10x faster without intra-op threading."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
