"""Shared test configuration: the repository root (tools/) and tests/ (``helpers``: the fixture locator) are
importable, hypothesis is deterministic; ``float64_one_thread`` for oracle tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:  # last: tests/pipeline etc. must never shadow the packages
    sys.path.append(str(ROOT / "tests"))

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci")


@pytest.fixture
def float64_one_thread():
    """float64 default dtype and one torch thread (the CI machine's 2 cores are shared; the oracle runs many small ops)."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
