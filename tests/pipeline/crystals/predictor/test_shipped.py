"""The shipped Perov-5 predictors: they load by name, say what they are, are small, and their records state held-out
errors that beat predicting the mean where a predictor can (clean crystals) and not where it cannot (t near 0)."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.common.model_file import MODELS_DIR, load_model_file
from pipeline.crystals.flow import load_crystal_model
from pipeline.crystals.predictor import DEFAULT_PREDICTORS, load_predictor
from structures.crystals.dataset import TokenizedCrystals


@pytest.mark.parametrize("name", sorted(DEFAULT_PREDICTORS))
def test_shipped_predictor_loads_and_fits_its_generator(name: str) -> None:
    pred = load_predictor(name)
    path = MODELS_DIR / DEFAULT_PREDICTORS[name]
    assert path.stat().st_size < 2_000_000
    assert json.loads(path.with_suffix(".json").read_text()) == load_model_file(path).record
    gen = load_crystal_model("perov_5")
    assert pred.properties == ("heat_ref", "dir_gap") and pred.dataset == "perov_5"
    assert pred.scheduler == gen.scheduler and pred.coords == gen.coords and pred.max_atoms == gen.max_atoms
    split = pred.record["dataset"]["split"]
    assert split == ("test" if name == "perov_5_judge" else "val")
    assert pred.judge_only == (name == "perov_5_judge")
    if pred.judge_only:
        assert "never guide with it" in pred.record["status"]


@pytest.mark.parametrize("name", sorted(DEFAULT_PREDICTORS))
def test_recorded_heldout_errors(name: str) -> None:
    held = load_predictor(name).record["heldout"]
    heat, base = held["properties"]["heat_ref"], held["baseline"]["heat_ref"]
    assert held["t_bins"][0] == "0.0-0.2" and held["t_bins"][-1] == "1 (clean)"
    assert heat["mae"][-1] < 0.5 * base["mae"]  # clean crystals: far better than the mean
    assert heat["mae"][0] > 0.85 * base["mae"]  # nearly everything masked: about the mean, no better
    assert 0.3 < heat["within_1sigma"][-1] < 0.9 and heat["within_2sigma"][-1] > 0.7


def test_judge_agrees_with_the_data_it_never_saw() -> None:
    """The judge (trained on test) on 200 val crystals at t = 1: its MAE of heat_ref is well below the mean's."""
    import pandas as pd

    from structures.data import resolve_dataset

    judge = load_predictor("perov_5_judge")
    ds = TokenizedCrystals.from_name("perov_5", "val", progress=False, limit=200)
    y = pd.read_csv(resolve_dataset("perov_5", "val"), usecols=["heat_ref"], nrows=200)["heat_ref"].to_numpy()[ds.rows]
    x = torch.from_numpy(ds.tokens.astype("int64"))
    with torch.no_grad():
        mean, std = judge.net(x, torch.ones(x.shape[0]))
    mae = float((mean[:, 0].double() - torch.from_numpy(y)).abs().mean())
    base = float((judge.net.loc[0].double() - torch.from_numpy(y)).abs().mean())
    assert mae < 0.5 * base, (mae, base)
