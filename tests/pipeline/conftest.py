"""Real structures for the relax / score tests (Perov-5 and Carbon-24 from the shared data)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def perov_test():
    from structures.data import load_crystals

    return load_crystals("perov_5", "test", limit=60).structures


@pytest.fixture(scope="session")
def perov_val():
    from structures.data import load_crystals

    return load_crystals("perov_5", "val", limit=40).structures


@pytest.fixture(scope="session")
def carbon_test():
    from structures.data import load_crystals

    return load_crystals("carbon_24", "test", limit=10).structures


@pytest.fixture(scope="session")
def chgnet():
    import torch

    from pipeline.relax import load_chgnet

    torch.set_num_threads(1)
    return load_chgnet("0.3.0")


from pipeline.common.perturb import rattle as rattled  # noqa: E402,F401 - used by the tests
