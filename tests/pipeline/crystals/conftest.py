"""Crystal test fixtures: real structures for the relax / score tests (Perov-5 and Carbon-24 from the embedded
data), and one tiny crystal model trained for a few steps on 64 Perov-5 crystals (seconds)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from helpers import tiny_config


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

    from pipeline.crystals.relax import load_chgnet

    torch.set_num_threads(1)
    return load_chgnet("0.3.0")


torch.set_num_threads(1)  # the tests are small; more threads only contend on the 2-core machine

@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.crystals.train import train_crystals

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_crystals(tiny_config(max_steps=40, val_every=20), out, progress=False)
    return res.best_path

