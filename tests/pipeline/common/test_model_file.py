"""safetensors checkpoints: round trip of tensors and record, atomic writes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.common.model_file import ModelFile, load_model_file, save_model_file
from pipeline.crystals.network import CrystalDiT, CrystalDiTConfig
from structures.errors import InputError


def test_round_trip_model_and_record(tmp_path: Path) -> None:
    cfg = CrystalDiTConfig(hidden=32, blocks=1, heads=4, time_freq_dim=16)
    net = CrystalDiT(cfg)
    rec = {"config": cfg.to_dict(), "dataset": {"name": "perov_5", "sha256": "ab" * 32}, "val_curve": [1.0, 0.5]}
    path = save_model_file(tmp_path / "m.safetensors", ModelFile(net.state_dict(), rec))
    ck = load_model_file(path)
    assert ck.record["config"] == cfg.to_dict() and ck.record["val_curve"] == [1.0, 0.5]
    net2 = CrystalDiT(CrystalDiTConfig(**ck.record["config"]))
    net2.load_state_dict(ck.state_dict)
    for k, v in net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k])
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="checkpoint not found"):
        load_model_file(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x80\x04this is a pickle, not safetensors")
    with pytest.raises(InputError, match="not a genmatch safetensors checkpoint"):
        load_model_file(bad)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = save_model_file(tmp_path / "m.safetensors", ModelFile({"w": torch.ones(2)}, {"format_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        load_model_file(path)
