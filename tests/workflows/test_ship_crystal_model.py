"""tools/ship_crystal_model.py: tensors unchanged, status and evaluations in the record, the wrong data set refused."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

from pipeline.common.model_file import load_model_file
from pipeline.crystals.flow import load_crystal_model
from pipeline.crystals.train import CrystalTrainConfig, train_crystals

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.ship_crystal_model import main as ship  # noqa: E402


def test_ship_adds_status_and_evaluations(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = CrystalTrainConfig(dataset="perov_5", network={"hidden": 32, "blocks": 1, "heads": 2, "dropout": 0.0,
                                                         "time_freq_dim": 16}, batch_size=16, max_steps=2, val_every=2,
                             warmup_steps=1, limit=32, val_fraction=0.25, val_times=1, coord_path="metric")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = train_crystals(cfg, tmp_path / "run", progress=False).model_path
    ev = [tmp_path / "a.log", tmp_path / "b.json"]
    ev[0].write_text('progress\n{"struct_valid_all": 0.8}\n')
    ev[1].write_text('{"struct_valid_all": 0.7, "n_samples": 1000}\n')
    out = ship([str(src), "--name", "perov_5", "--status", "test", "--evaluation", str(ev[0]), "--evaluation",
                str(ev[1]), "--out", str(tmp_path / "ship" / "m.safetensors")])
    rec = load_model_file(out).record
    assert rec["status"] == "test" and [e["struct_valid_all"] for e in rec["evaluation"]] == [0.8, 0.7]
    assert json.loads(out.with_suffix(".json").read_text())["status"] == "test"
    a, b = load_model_file(src).state_dict, load_model_file(out).state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_crystal_model(out).coords.metric
    with pytest.raises(SystemExit):  # a Perov-5 model is not a Carbon-24 default
        ship([str(src), "--name", "carbon_24", "--status", "x", "--out", str(tmp_path / "c.safetensors")])
    assert not (tmp_path / "c.safetensors").exists()
