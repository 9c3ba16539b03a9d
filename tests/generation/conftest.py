"""Shared fixtures: one tiny crystal model trained for a few steps on 64 Perov-5 crystals (seconds)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from pipeline.train.crystals import TrainConfig

torch.set_num_threads(1)  # the tests are small; more threads only contend on the 2-core machine

TINY_NET = {"hidden": 32, "blocks": 1, "heads": 2, "dropout": 0.0, "time_freq_dim": 16}


def tiny_config(**kw) -> TrainConfig:
    base = dict(dataset="perov_5", split="val", network=dict(TINY_NET), batch_size=16, max_steps=20, val_every=10,
                warmup_steps=5, lr=3e-3, limit=64, val_fraction=0.25, val_times=2, seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.train.crystals import train_crystals

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny_model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_crystals(tiny_config(max_steps=40, val_every=20), out, progress=False)
    return res.best_path
