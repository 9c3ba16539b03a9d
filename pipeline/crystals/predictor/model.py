"""Predictor model files: the network's weights and a record of kind ``crystal_predictor`` (safetensors, no pickle).

The record says what the predictor predicts and on which states it was trained, so a sampler can check that it
fits its generator: ``properties``, ``standardisation`` (the training targets' mean and std per property; the
network's ``loc`` / ``scale`` buffers hold the same), ``flow`` (the generator's scheduler and coordinate path: the
predictor's t is that path's t), ``max_atoms``, ``dataset`` (name, split, file, SHA-256, counts), ``generator``,
``network``, ``training``, ``heldout`` (MAE / RMSE / calibration per noise level) and, for a judge, ``status``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.common.model_file import MODELS_DIR, load_model_file, load_state_dict_checked
from pipeline.crystals.flow import CoordinatePath
from pipeline.crystals.predictor.network import CrystalPredictor, PredictorNetConfig
from structures.errors import InputError

__all__ = ["DEFAULT_PREDICTORS", "KIND", "CrystalPredictorModel", "load_predictor", "resolve_predictor_path"]

KIND = "crystal_predictor"
#: shipped predictors by name (files in ``pipeline/models/``); the judge is for benchmarks only, never for guidance
DEFAULT_PREDICTORS = {"perov_5": "perov_5_predictor.safetensors", "perov_5_judge": "perov_5_judge.safetensors"}


@dataclass
class CrystalPredictorModel:
    """A loaded predictor: the network (eval mode), what it predicts and the generator path it was trained on."""

    net: CrystalPredictor
    properties: tuple[str, ...]
    scheduler: str
    coords: CoordinatePath
    dataset: str | None
    max_atoms: int
    record: dict[str, Any]
    path: Path | None = None

    @property
    def judge_only(self) -> bool:
        """True for a predictor whose record says it must not guide (a benchmark judge)."""
        return bool(self.record.get("judge_only", False))


def resolve_predictor_path(name_or_path: str | os.PathLike) -> Path:
    """A predictor file, or a shipped one by name (:data:`DEFAULT_PREDICTORS`)."""
    if str(name_or_path) in DEFAULT_PREDICTORS:
        path = MODELS_DIR / DEFAULT_PREDICTORS[str(name_or_path)]
        if not path.is_file():
            raise InputError(f"the shipped {name_or_path} predictor is not in this installation ({path}); train one "
                             "with 'genmatch train predictor' and pass its file")
        return path
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise InputError(f"predictor {str(name_or_path)!r} is neither a file nor a shipped predictor "
                         f"({', '.join(DEFAULT_PREDICTORS)})")
    return path


def load_predictor(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> CrystalPredictorModel:
    """Load a property predictor written by ``genmatch train predictor`` (or a shipped one by name)."""
    path = resolve_predictor_path(name_or_path)
    ckpt = load_model_file(path, device=device)
    rec = ckpt.record
    if rec.get("kind") != KIND:
        raise InputError(f"{path}: not a genmatch property predictor (kind={rec.get('kind')!r}); give a file written "
                         "by 'genmatch train predictor'")
    try:
        properties = tuple(str(p) for p in rec["properties"])
        cfg = PredictorNetConfig(**rec["network"])
        if cfg.n_properties != len(properties):
            raise ValueError(f"{cfg.n_properties} outputs for {len(properties)} properties")
        scheduler = str(rec["flow"]["scheduler"])
        coords = CoordinatePath.from_record(rec["flow"])
        coords.validate()
        max_atoms = int(rec["max_atoms"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the predictor record is incomplete or malformed ({type(exc).__name__}: {exc}); "
                         "give a file written by 'genmatch train predictor'") from None
    net = CrystalPredictor(cfg)
    load_state_dict_checked(net, ckpt.state_dict, str(path), expected=f"predictor network {rec['network']!r}")
    return CrystalPredictorModel(net=net.to(device).eval(), properties=properties, scheduler=scheduler, coords=coords,
                                 dataset=rec.get("dataset", {}).get("name"), max_atoms=max_atoms, record=rec,
                                 path=path)
