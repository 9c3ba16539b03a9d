"""The embedded default crystal models in pipeline/models/: loadable without pickle, and they sample crystals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.crystals.flow import MODELS_DIR, DEFAULT_MODELS, load_crystal_model
from pipeline.crystals.generate import CrystalGenerateConfig, sample_tokens
from pipeline.crystals.network import CONFIGS
from pipeline.crystals.score.validity import structural_validity
from structures.crystals.tokens import decode_batch

#: floor on structural validity of a short 40-step run (the recorded 250-step evaluation is higher)
MIN_STRUCT_VALID = {"perov_5": 0.7, "carbon_24": 0.25}
SHIPPED = sorted(name for name, f in DEFAULT_MODELS.items() if (MODELS_DIR / f).is_file())


def test_perov_5_model_is_shipped() -> None:
    assert "perov_5" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_record_and_size(name: str) -> None:
    path = MODELS_DIR / DEFAULT_MODELS[name]
    assert path.stat().st_size < 10 * 2**20
    model = load_crystal_model(name)
    rec = model.record
    assert rec["dataset"]["name"] == name and rec["dataset"]["split"] == "val"
    assert len(rec["dataset"]["sha256"]) == 64 and rec["validation_curve"] and rec["code_version"]["genmatch"]
    # the `small` DiT (a run may override its dropout, which changes no weight shape)
    assert {**rec["network"], "dropout": 0.0} == {**CONFIGS["small"].to_dict(), "dropout": 0.0}
    assert rec["weights"] == "ema"
    side = json.loads(path.with_suffix(".json").read_text())  # the human-readable copy of the record
    assert side["training"]["step"] == rec["training"]["step"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_samples_valid_crystals(name: str) -> None:
    """A short 40-step run of 24 samples: nearly all decode; structural validity above the model's floor."""
    model = load_crystal_model(name)
    counts = np.random.default_rng(0).choice(len(model.atom_count_distribution), 24,
                                             p=model.atom_count_distribution)
    tok = sample_tokens(model, counts, CrystalGenerateConfig(steps=40), torch.Generator().manual_seed(0))
    dec = decode_batch(tok)
    valid = [structural_validity(s) for s in dec.structures() if s]
    assert dec.valid.mean() >= 0.9 and np.mean(valid) >= MIN_STRUCT_VALID[name]
    assert all(len(s) == n for s, n in zip(dec.structures(), counts) if s)
