"""Fixtures for the continuous manifolds tests (opt-in, so tests/manifolds/discrete keeps its own settings)."""

import pytest
import torch


@pytest.fixture
def float64_one_thread():
    """float64 default dtype and one torch thread (the CI machine's 2 cores are shared; the oracle runs many small ops)."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
