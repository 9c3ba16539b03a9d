"""Discrete-manifold tests run on one torch thread (the CPU is shared; two contended threads are ~10x slower)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# The shared toy module (discrete_toys.py) is imported by its plain name: a third-party "tests" package in
# site-packages shadows the repository's namespace package, so "tests.manifolds..." is not importable.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
