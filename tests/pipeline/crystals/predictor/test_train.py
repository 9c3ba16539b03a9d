"""Training a property predictor: a tiny run on 64 Perov-5 val crystals writes a loadable model file with its record,
resumes exactly, returns a finished run, and refuses bad data before anything is written."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline.common.model_file import load_model_file
from pipeline.crystals.flow import resolve_model_path
from pipeline.crystals.predictor import PredictorTrainConfig, load_predictor, train_predictor
from pipeline.crystals.predictor.evaluate import T_BINS, format_table
from structures.crystals.tokens import MASK
from structures.data import resolve_dataset
from structures.errors import InputError

TINY = dict(data="perov_5:val", properties=("heat_ref", "dir_gap"), hidden=16, blocks=1, heads=2, batch_size=16,
            limit=64, holdout=0.25, eval_every=5, eval_draws=1, warmup_steps=2, lr=3e-3, lr_schedule="constant")


def tiny(**kw) -> PredictorTrainConfig:
    return PredictorTrainConfig(**{**TINY, "steps": 10, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    return train_predictor(tiny(), tmp_path_factory.mktemp("pred"), progress=False)


def test_tiny_run_writes_a_loadable_predictor_with_its_record(trained) -> None:
    rec = trained.record
    assert trained.model_path == trained.out_dir / "predictor.safetensors"
    assert (trained.out_dir / "predictor.json").is_file() and (trained.out_dir / "state.pt").is_file()
    assert rec["kind"] == "crystal_predictor" and rec["properties"] == ["heat_ref", "dir_gap"]
    assert rec["flow"]["scheduler"] == load_model_file(resolve_model_path("perov_5")).record["flow"]["scheduler"]
    assert rec["generator"]["model"] == "perov_5" and rec["max_atoms"] == 20
    ds = rec["dataset"]
    assert ds["name"] == "perov_5" and ds["split"] == "val" and len(ds["sha256"]) == 64
    assert ds["n_train"] + ds["n_heldout"] == ds["n_crystals"] == 64 and ds["n_heldout"] == 16
    assert set(rec["standardisation"]) == {"heat_ref", "dir_gap"}
    assert rec["training"]["augment"] is False  # as the perov_5 generator was trained: its samples' origins
    assert rec["training"]["step"] == 10 and [r[0] for r in rec["curve"]["rows"]] == [5, 10]
    held = rec["heldout"]
    assert held["t_bins"][-1] == "1 (clean)" and len(held["t_bins"]) == len(T_BINS)
    for prop in ("heat_ref", "dir_gap"):
        row = held["properties"][prop]
        for key in ("mae", "rmse", "within_1sigma", "within_2sigma", "nll"):
            assert len(row[key]) == len(T_BINS) and all(math.isfinite(v) for v in row[key])
        assert all(0 <= a <= b <= 1 for a, b in zip(row["within_1sigma"], row["within_2sigma"]))
        assert held["baseline"][prop]["mae"] > 0
    assert "| 1 (clean) |" in format_table(held)

    model = load_predictor(trained.model_path)
    assert model.properties == ("heat_ref", "dir_gap") and model.scheduler == rec["flow"]["scheduler"]
    assert model.dataset == "perov_5" and model.max_atoms == 20 and not model.coords.metric
    std = rec["standardisation"]
    torch.testing.assert_close(model.net.loc, torch.tensor([std["heat_ref"]["mean"], std["dir_gap"]["mean"]]))
    x = torch.full((1, 26), MASK)  # 5 atoms, every token masked: the t = 0 state
    mean, sd = model.net(x, torch.zeros(1))
    assert mean.shape == sd.shape == (1, 2) and (sd > 0).all()


def test_resume_continues_exactly_and_a_finished_run_is_returned(tmp_path: Path, trained) -> None:
    """With a constant lr after the warm-up, 5 steps and then 10 (a resume) are the same as 10 at once: the state
    holds the weights, EMA, optimizer and curve, and batch i is drawn from seed (seed, i)."""
    straight = trained
    first = train_predictor(tiny(steps=5), tmp_path, progress=False)
    assert first.record["training"]["step"] == 5
    resumed = train_predictor(tiny(steps=10), tmp_path, progress=False)
    assert resumed.record["training"]["step"] == 10
    a, b = load_model_file(straight.model_path).state_dict, load_model_file(resumed.model_path).state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert resumed.record["curve"]["rows"] == straight.record["curve"]["rows"]
    stamp = resumed.model_path.stat().st_mtime_ns
    again = train_predictor(tiny(steps=10), tmp_path, progress=False)
    assert again.model_path.stat().st_mtime_ns == stamp and again.record == resumed.record  # returned, not retrained
    with pytest.raises(InputError, match="holds a train-predictor run with other"):
        train_predictor(tiny(steps=10, seed=1), tmp_path, progress=False)


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("csv")
    df = pd.read_csv(resolve_dataset("perov_5", "val"), nrows=24)
    df["half_nan"] = [float("nan") if i % 4 == 0 else float(i) for i in range(len(df))]
    df["all_nan"] = float("nan")
    df[["cif", "formula", "heat_ref", "half_nan", "all_nan"]].to_csv(d / "small.csv", index=False)
    (d / "notes.txt").write_text("not a csv\n")
    return d


@pytest.mark.parametrize("fields, message", [
    (dict(properties=("band_gap",)), "'band_gap' not a column of small.csv; its numeric columns are heat_ref"),
    (dict(properties=("formula",)), "'formula' of small.csv is not numeric"),
    (dict(properties=("all_nan",)), "'all_nan' of small.csv has no values"),
    (dict(properties=("cif",)), "'cif' not a column"),
])
def test_bad_columns_are_refused_before_anything_is_written(csv_dir: Path, tmp_path: Path, fields: dict,
                                                            message: str) -> None:
    cfg = PredictorTrainConfig(**{**TINY, "data": str(csv_dir / "small.csv"), "model": "perov_5", "limit": None,
                                  **fields})
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        train_predictor(cfg, out, progress=False)
    assert not out.exists()


def test_rows_with_missing_values_are_dropped_and_counted(csv_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = PredictorTrainConfig(**{**TINY, "data": str(csv_dir / "small.csv"), "model": "perov_5", "limit": None,
                                  "properties": ("half_nan",), "steps": 2, "eval_every": 2})
    res = train_predictor(cfg, tmp_path, progress=False)
    assert "dropped 6 of 24 crystals of small.csv with a missing half_nan value" in capsys.readouterr().err
    assert res.record["dataset"]["n_missing_property"] == 6 and res.record["dataset"]["n_crystals"] == 18
    assert res.record["dataset"]["name"] == "small"


@pytest.mark.parametrize("fields, message", [
    (dict(data="perov_6:val"), "neither a CSV file nor a data set split"),
    (dict(data="perov_5"), "needs a split"),
    (dict(data="perov_5:dev"), "needs a split"),
    (dict(properties=()), "properties must be one or more column names"),
    (dict(properties=("heat_ref", "heat_ref")), "distinct"),
    (dict(model="nope.safetensors"), "neither a checkpoint file nor one of the embedded"),
    (dict(holdout=1.0), "holdout must be below 1"),
    (dict(clean_fraction=1.5), "clean_fraction"),
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(lr_schedule="linear"), "lr_schedule must be one of cosine, constant"),
    (dict(heads=3), "divisible"),
    (dict(min_std=0.0), "min_std must be a finite number > 0.0"),
    (dict(augment="yes"), "augment must be True or False"),
])
def test_bad_configs_are_input_errors(fields: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tiny(**fields)


def test_csv_without_a_shipped_generator_needs_a_model(csv_dir: Path) -> None:
    with pytest.raises(InputError, match="no shipped generator for data set 'small'"):
        tiny(data=str(csv_dir / "small.csv"))
    with pytest.raises(InputError, match="not a CDVAE-format"):
        tiny(data=str(csv_dir / "notes.txt"), model="perov_5")


def test_load_predictor_refuses_other_kinds(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a genmatch property predictor \\(kind='crystal_dit'\\)"):
        load_predictor(resolve_model_path("perov_5"))
    with pytest.raises(InputError, match="neither a file nor a shipped predictor"):
        load_predictor(tmp_path / "missing.safetensors")
