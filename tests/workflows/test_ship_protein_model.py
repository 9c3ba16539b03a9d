"""tools/ship_protein_model.py: the shipped record carries the sampler default that `generate proteins` then uses,
the tensors are unchanged, and a file that is not a protein model is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from pipeline.common.model_file import load_model_file
from pipeline.proteins.network import ProteinNetwork
from pipeline.proteins.network.checkpoint import CheckpointError, save_protein_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tools.ship_protein_model import main as ship  # noqa: E402


def test_ship_adds_sampling_status_and_evaluation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ProteinNetwork.build("small")
    src = save_protein_checkpoint(tmp_path / "best.safetensors", net, {"training": {"step": 7}})
    ev = tmp_path / "q.log"
    ev.write_text('progress line\n{"rows": [{"set": "flow", "helix": 0.3}]}\n')
    out = ship([str(src), "--steps", "37", "--status", "test model", "--evaluation", str(ev),
                "--out", str(tmp_path / "ship" / "p.safetensors")])
    rec = load_model_file(out).record
    assert rec["sampling"] == {"steps": 37} and rec["status"] == "test model" and rec["training"]["step"] == 7
    assert rec["evaluation"]["rows"][0]["helix"] == 0.3
    assert json.loads(out.with_suffix(".json").read_text())["sampling"]["steps"] == 37
    a, b = load_model_file(src).state_dict, load_model_file(out).state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    from workflows import proteins

    s = proteins.generate(model=out, out_dir=tmp_path / "gen", lengths=(12,), per_length=1, progress=False).summary
    assert s.settings["sampler"]["steps"] == 37  # the model's default when --steps is not given


def test_ship_refuses_a_non_protein_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        ship([str(bad), "--steps", "10", "--status", "x", "--out", str(tmp_path / "o.safetensors")])
    assert not (tmp_path / "o.safetensors").exists()
