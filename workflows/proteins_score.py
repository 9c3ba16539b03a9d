"""Python entry point for protein scoring over a folder of PDB/mmCIF backbones or a list of backbones.

    from workflows.proteins_score import score_proteins
    from pipeline.proteins.score import ProteinScoreConfig
    scores = score_proteins("samples/", config=ProteinScoreConfig(esmfold="/models/esmfold"), out_dir="runs/sp")
    print(scores.summary.designable_fraction, scores.summary.novelty)

``genmatch score proteins DIR`` calls this. Protocol: REFERENCE.md sections 1 and 5 (see
:mod:`pipeline.proteins.score`).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Sequence

from pipeline.common.parallel import ComputeConfig
from pipeline.common.run import fingerprint, open_run
from pipeline.proteins.score import ProteinInput, ProteinScoreConfig, ProteinScores, from_chains, read_protein_input
from pipeline.proteins.score.summary import score_proteins as _score
from structures.errors import InputError
from structures.proteins.io import BackboneChain

RUN_KIND = "score-proteins"


def as_protein_input(backbones: "Sequence[BackboneChain] | str | os.PathLike | ProteinInput",
                     limit: int | None = None) -> ProteinInput:
    """A :class:`ProteinInput` from a folder/file path, BackboneChains or an input as is."""
    if isinstance(backbones, ProteinInput):
        return backbones
    if isinstance(backbones, (str, os.PathLike)):
        return read_protein_input(backbones, limit=limit)
    chains = list(backbones)
    return from_chains(chains[:limit] if limit else chains)


def score_proteins(backbones: "Sequence[BackboneChain] | str | os.PathLike | ProteinInput", *,
                   config: ProteinScoreConfig = ProteinScoreConfig(), compute: ComputeConfig = ComputeConfig(),
                   out_dir: str | os.PathLike | None = None, restart: bool = False, plots: bool = True,
                   threads: int | None = None) -> ProteinScores:
    """Score backbones (see :func:`pipeline.proteins.score.score_proteins`).

    Every input and option is checked before the run folder is opened: a missing folder, a folder without
    structure files, none usable, a bad option or a missing ESMFold/reference folder is
    :class:`~structures.errors.InputError` (exit 2) and nothing is written. A single unreadable file is a
    ``failed`` row with its reason. With ``out_dir`` (a run folder): scores.csv/.parquet, summary.json,
    summary.txt, tm_matrix.npz and PNG plots; rerunning resumes from the cache.
    """
    config.validate()
    inp = as_protein_input(backbones)
    if not len(inp):
        raise InputError(f"{inp.source}: no backbones to score")
    if not inp.usable():
        raise InputError(f"{inp.source}: none of the {len(inp)} backbones can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})")
    if out_dir is None:
        return _score(inp, config, compute, threads)
    from pipeline.proteins.score.reference import reference_spec
    from pipeline.proteins.score.report import write_scores

    spec = reference_spec(config.reference, config.reference_limit)  # checked before the folder opens
    if spec is not None:
        from pipeline.proteins.score.reference import load_reference

        load_reference(spec)  # cached in this process; an unusable reference is refused here
    backend = None
    if config.esmfold_path() is not None:
        from pipeline.proteins.score.folding import fold_backend

        backend = fold_backend(config.esmfold_path(), config.fold_recycles).identity()
    settings = {**asdict(config), "esmfold": str(config.esmfold_path()), "plots": plots}
    inputs = fingerprint([inp.fingerprint, spec.key if spec else None, backend])
    with open_run(out_dir, RUN_KIND, settings, inputs, restart=restart) as run:
        scores = _score(inp, config, compute, threads)
        write_scores(scores, run.path, plots=plots)
        return scores
