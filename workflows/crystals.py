"""The crystal verbs of the Python API: :func:`generate`, :func:`relax`, :func:`score` and :func:`train` (the CLI
calls these too, so a script and ``genmatch ... crystals`` share one code path).

    from workflows import crystals
    gen = crystals.generate(n=50, model="perov_5")
    rel = crystals.relax(gen, max_steps=300)
    scores = crystals.score(rel, reference="perov_5:test")
    print(scores.summary)

Every verb takes a config (:class:`CrystalGenerateConfig`, :class:`CrystalRelaxConfig`,
:class:`CrystalScoreConfig`, :class:`CrystalTrainConfig`) and/or its fields by keyword (with a config too, they
override it), ``threads`` (torch threads for this call; None: leave as is), ``out_dir`` (a resumable run folder,
docs/runs.md; None: the results stay in memory; required by ``train``), ``restart`` and ``progress``. Structures
may be pymatgen ``Structure``s, ASE ``Atoms``, a dict ``{id: structure}``, a previous result, a CIF file or folder,
a CDVAE CSV or a data set split such as ``"perov_5:test"``; results keep the caller's ids. Bad arguments raise
:class:`~structures.errors.InputError` naming the argument. The work is done in :mod:`pipeline.crystals`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pipeline.crystals.relax.run import CrystalRelaxConfig
from pipeline.crystals.results import GeneratedCrystals, RelaxedCrystals, ScoredCrystals
from pipeline.crystals.score.config import CrystalScoreConfig
from structures.validate import check_bool
from workflows.verbs import check_run_args, make_config, torch_threads

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.common.training import DeviceSettings, TrainedModel
    from pipeline.crystals.conditions import CrystalConditions
    from pipeline.crystals.generate import CrystalGenerateConfig
    from pipeline.crystals.predictor.train import PredictorTrainConfig, TrainedPredictor
    from pipeline.crystals.train import CrystalTrainConfig

__all__ = ["CrystalConditions", "CrystalGenerateConfig", "CrystalRelaxConfig", "CrystalScoreConfig",
           "CrystalTrainConfig", "DeviceSettings", "GeneratedCrystals", "RelaxedCrystals", "ScoredCrystals", "TrainedModel", "generate", "relax", "score",
           "train"]


#: configs whose modules import torch / Lightning: loaded on first use (PEP 562)
_LAZY = {"CrystalConditions": "pipeline.crystals.conditions", "CrystalGenerateConfig": "pipeline.crystals.generate",
         "CrystalTrainConfig": "pipeline.crystals.train",
         "DeviceSettings": "pipeline.common.training", "TrainedModel": "pipeline.common.training"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def generate(config: "CrystalGenerateConfig | None" = None, *, out_dir: str | os.PathLike | None = None,
             threads: int | None = None, restart: bool = False, progress: bool = True,
             **fields: Any) -> GeneratedCrystals:
    """Sample crystals with a KO-DFM model (:class:`CrystalGenerateConfig`; e.g. ``generate(n=50, steps=100)``).

    Without ``out_dir`` the decoded structures stay in memory; with it they are also written to a resumable run
    folder (``cifs/<id>.cif``, ``manifest.json/.csv``, ``run.json``), the same crystals either way. Samples whose
    tokens are not a crystal are listed in ``failures``.

    ``conditions=`` a :class:`~pipeline.crystals.conditions.CrystalConditions` or a list of them (``n`` crystals
    each, in order; result ids ``gen_<i>``, condition ``i // n``): structure prediction from a formula, element
    sets, a seed structure to refine or partly keep, property targets with a predictor (docs/conditioning.md).
    E.g. ``generate(n=20, conditions=CrystalConditions(formula="BaTiO3"))``. Conditions that the model cannot
    meet raise :class:`~structures.errors.InputError` before anything is written.
    """
    from pipeline.crystals.generate import CrystalGenerateConfig, generate_crystals

    config = make_config(CrystalGenerateConfig, config, fields, "generate")
    check_run_args("generate", out_dir, restart, progress)
    with torch_threads("generate", threads):
        return generate_crystals(config, out_dir, restart=restart, progress=progress)


def relax(structures: Any, config: CrystalRelaxConfig | None = None, *, out_dir: str | os.PathLike | None = None,
          threads: int | None = None, restart: bool = False, progress: bool = True, **fields: Any) -> RelaxedCrystals:
    """Relax crystals with CHGNet, FIRE on a FrechetCellFilter batched in flight (:class:`CrystalRelaxConfig`;
    e.g. ``relax(gen, max_steps=300)``).

    The result has one structure and one ``table`` row per input, in input order (status converged / step_limit
    / failed with its reason; energies per atom). With ``out_dir``: ``relaxed/<id>.cif``,
    ``relax_results.csv/.parquet`` and ``relax_summary.json``; an interrupted run resumes.
    """
    from pipeline.crystals.relax.run import relax_crystals

    config = make_config(CrystalRelaxConfig, config, fields, "relax")
    check_run_args("relax", out_dir, restart, progress)
    with torch_threads("relax", threads):
        return relax_crystals(structures, config, out_dir, restart=restart, progress=progress)


def score(structures: Any, config: CrystalScoreConfig | None = None, *, out_dir: str | os.PathLike | None = None,
          threads: int | None = None, restart: bool = False, progress: bool = True, **fields: Any) -> ScoredCrystals:
    """Score crystals against a reference set (:class:`CrystalScoreConfig`; e.g. ``score(rel,
    reference="perov_5:test")``): CDVAE validity, COV-R / COV-P, Wasserstein distances of density and N_el; with
    ``hull=``, E_hull, stability with the hull's coverage, uniqueness; with ``training=``, novelty and S.U.N.
    (docs/protocols.md).

    The ``table`` has one row per input, ``id`` the caller's id; inputs that cannot be scored are rows with
    ``usable`` False and their ``problem``. A :class:`RelaxedCrystals` input brings its CHGNet energies. With
    ``out_dir``: scores.csv/.parquet, summary.json and PNG plots.
    """
    from pipeline.crystals.score.run import score_crystals

    config = make_config(CrystalScoreConfig, config, fields, "score")
    check_run_args("score", out_dir, restart, progress)
    with torch_threads("score", threads):
        return score_crystals(structures, config, out_dir, restart=restart, progress=progress)


def train(config: "CrystalTrainConfig | None" = None, *, out_dir: str | os.PathLike, threads: int | None = None,
          restart: bool = False, progress: bool = True, hardware: "DeviceSettings | None" = None,
          snapshots: bool = False, **fields: Any) -> "TrainedModel":
    """Train a crystal generator with KO-DFM (:class:`CrystalTrainConfig`) in the run folder ``out_dir`` (required;
    a rerun resumes, a larger ``max_steps`` trains longer). ``hardware``: accelerator, devices and nodes
    (:class:`~pipeline.common.training.DeviceSettings`; default one CPU process); ``snapshots``: also keep
    every validated model."""
    from pipeline.crystals.train import CrystalTrainConfig, train_crystals

    cfg = make_config(CrystalTrainConfig, config, fields, "train")
    check_run_args("train", out_dir, restart, progress, required=True)
    with torch_threads("train", threads):
        return train_crystals(cfg, out_dir, hardware=hardware, restart=restart, progress=progress,
                              snapshots=check_bool("train(snapshots=...)", snapshots))


# -- property predictors (predictor guidance, Nisonoff et al. 2024) ------------------------------------------
_LAZY.update(PredictorTrainConfig="pipeline.crystals.predictor.train",
             TrainedPredictor="pipeline.crystals.predictor.train")
__all__ += ["PredictorTrainConfig", "TrainedPredictor", "train_predictor"]


def train_predictor(config: "PredictorTrainConfig | None" = None, *, out_dir: str | os.PathLike,
                    threads: int | None = None, restart: bool = False, progress: bool = True,
                    **fields: Any) -> "TrainedPredictor":
    """Train a property predictor p(y | x_t, t) on the noisy token sequences of a generator's path
    (:class:`~pipeline.crystals.predictor.train.PredictorTrainConfig`; e.g. ``train_predictor(data="perov_5:val",
    properties=["heat_ref", "dir_gap"], out_dir="runs/pred")``) in the run folder ``out_dir`` (required; a rerun
    resumes, a larger ``steps`` trains longer). Returns the model path and its record (held-out errors per noise
    level); load it with :func:`pipeline.crystals.predictor.load_predictor` (docs/guidance.md)."""
    from pipeline.crystals.predictor.train import PredictorTrainConfig, train_predictor as _train_predictor
    from structures.errors import InputError

    if config is None:
        missing = [f for f in ("data", "properties") if f not in fields]
        if missing:
            raise InputError(f"train_predictor(): give {' and '.join(missing)} (e.g. data='perov_5:val', "
                             "properties=['heat_ref']) or a PredictorTrainConfig")
    cfg = make_config(PredictorTrainConfig, config, fields, "train_predictor")
    check_run_args("train_predictor", out_dir, restart, progress, required=True)
    with torch_threads("train_predictor", threads):
        return _train_predictor(cfg, out_dir, restart=restart, progress=progress)
