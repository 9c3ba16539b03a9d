"""One ``score crystals`` run: read the inputs, build the hull, score, write the run folder.

:func:`score_crystals` is what ``genmatch score crystals`` and :func:`workflows.crystals.score` call, once per run.
With an ``out_dir`` (a run folder, :func:`pipeline.common.run.open_run`; docs/runs.md): ``scores.csv/.parquet``,
``summary.json`` and PNG plots; a rerun with the same inputs and settings finds the run, other inputs in the same
folder are refused unless ``restart``. Everything that can be refused (the inputs, the reference, the energies) is
refused before the folder is created.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.io import CrystalInput
from pipeline.common.run import fingerprint, open_run
from pipeline.crystals.inputs import as_crystal_input
from pipeline.crystals.results import RelaxedCrystals, ScoredCrystals
from pipeline.crystals.score.config import CrystalScoreConfig
from structures.errors import InputError

__all__ = ["score_crystals"]


def score_crystals(structures: Any, config: CrystalScoreConfig, out_dir: str | os.PathLike | None = None, *,
                   restart: bool = False, progress: bool = True) -> ScoredCrystals:
    """Score ``structures`` (anything :func:`pipeline.crystals.inputs.as_crystal_input` takes) against
    ``config.reference`` (:class:`CrystalScoreConfig`; the metrics:
    :func:`pipeline.crystals.score.score.score_structures`).

    The table has one row per input with the caller's ids; an input that cannot be scored (unreadable CIF,
    non-physical cell, failed relaxation) is a row with ``usable`` False and its ``problem``. A previous
    :class:`RelaxedCrystals` brings its CHGNet energies along when ``config.energies`` is not given and the
    CHGNet versions agree. Without ``out_dir`` nothing is written.
    """
    from pipeline.crystals.score.hull import build_hull, read_hull_file
    from pipeline.crystals.score.report import write_scores
    from pipeline.crystals.score.score import score_structures

    inp = as_crystal_input(structures, "score(structures=...)")
    if config.reference is None:
        raise InputError("score(reference=...) is required: the reference (test) set, e.g. 'perov_5:test', a folder "
                         "of CIFs, a CDVAE CSV or structures (CLI: --reference)")
    ref = as_crystal_input(config.reference, "CrystalScoreConfig.reference", limit=config.reference_limit)
    if not any(p is None for p in ref.problems):
        raise InputError(f"{ref.source}: no usable reference structure")
    if not any(p is None for p in inp.problems):  # before the run folder is opened: nothing is written
        raise InputError(f"{inp.source}: none of the {len(inp)} structures can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})" if len(inp) else f"{inp.source}: no structures")
    energies = _energies(structures, inp, config)
    train = as_crystal_input(config.training, "CrystalScoreConfig.training") if config.training is not None else None
    hull_ref = (as_crystal_input(config.hull_reference, "CrystalScoreConfig.hull_reference")
                if config.hull_reference is not None else None)
    compute = config.compute(progress)
    hull_file = read_hull_file(config)  # a hull file is read before the run folder: a bad one changes nothing
    config.check_resources()  # the scheduler answers

    def run() -> ScoredCrystals:
        usable = [s for s, p in zip(inp.structures, inp.problems) if p is None]
        hull = hull_file if hull_file is not None else build_hull(
            config, hull_ref if str(config.hull) == "default" else None, compute,
            queries=[s.composition for s in usable])
        return score_structures(inp, ref, config, hull=hull, energies=energies, compute=compute,
                                training=None if train is None else [s for s in train.structures if s is not None])

    if out_dir is None:
        return run()
    inputs = fingerprint([inp.fingerprint, ref.fingerprint, _hull_fingerprint(config, hull_ref), energies,
                          None if train is None else train.fingerprint])
    with open_run(out_dir, "score-crystals", config.run_settings(), inputs, restart=restart) as folder:
        scores = replace(run(), out_dir=folder.path)
        write_scores(scores, folder.path, plots=config.plots)
        return scores


def _energies(structures: Any, inp: CrystalInput, config: CrystalScoreConfig) -> np.ndarray | None:
    """Energies per atom, one per input: ``config.energies`` (numbers, or a relax_results table read by id), else
    those of a :class:`RelaxedCrystals` input relaxed with the same CHGNet, else None (computed when needed)."""
    from pipeline.crystals.score.energies import read_energies

    e = config.energies
    if e is None and isinstance(structures, RelaxedCrystals) and structures.chgnet == config.chgnet:
        e = structures.energies_per_atom()
    if e is None:
        return None
    values = read_energies(e, inp.ids) if isinstance(e, (str, os.PathLike)) else np.asarray(e, dtype=float)
    if len(values) != len(inp):
        raise InputError(f"CrystalScoreConfig.energies: {len(values)} energies for {len(inp)} structures")
    return values


def _hull_fingerprint(config: CrystalScoreConfig, hull_ref: CrystalInput | None) -> list[Any]:
    """What identifies the hull of a run: the hull (a file by its bytes), relaxed or static reference energies,
    and the hull reference's structures."""
    h = config.hull
    p = Path(str(h)).expanduser() if isinstance(h, (str, os.PathLike)) else None
    return [p if p is not None and p.is_file() else str(h), config.hull_relax,
            hull_ref.fingerprint if hull_ref is not None else None]
