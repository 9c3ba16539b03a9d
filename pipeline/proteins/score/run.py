"""One protein scoring run: inputs checked, then scored in memory or in a resumable run folder.

Every input and option is checked before the run folder is opened: a missing folder, a folder without structure
files, none usable, or a missing ESMFold / reference folder is :class:`~structures.errors.InputError` and nothing is
written. A single unreadable file is a ``failed`` row with its reason. With ``out_dir`` (a run folder keyed by the
scoring settings and the inputs' content): scores.csv/.parquet, summary.json, summary.txt, tm_matrix.npz and PNG
plots; rerunning resumes from the score cache.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.common.run import fingerprint, open_run
from pipeline.proteins.score.config import ProteinScoreConfig
from pipeline.proteins.score.inputs import as_protein_input
from pipeline.proteins.score.summary import ScoredProteins, score_proteins
from structures.errors import InputError

RUN_KIND = "score-proteins"

__all__ = ["RUN_KIND", "score_backbones"]


def score_backbones(backbones: Any, config: ProteinScoreConfig, *, out_dir: str | os.PathLike | None = None,
                    restart: bool = False, progress: bool = True, threads: int | None = None) -> ScoredProteins:
    """Score ``backbones`` (anything :func:`~pipeline.proteins.score.inputs.as_protein_input` takes) with ``config``;
    ``threads``: torch threads of each worker process when ``config.workers`` > 1."""
    inp = as_protein_input(backbones, limit=config.limit)
    if not len(inp):
        raise InputError(f"backbones: {inp.source}: no backbones to score")
    if not inp.usable():
        raise InputError(f"backbones: {inp.source}: none of the {len(inp)} backbones can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})")
    config.check_resources([len(inp.chains[i].sequence) for i in inp.usable()])  # scheduler, memory
    compute = config.compute(progress)
    worker_threads = (threads or 1) if config.workers > 1 else None
    if out_dir is None:
        return score_proteins(inp, config, compute, worker_threads)
    from pipeline.proteins.score.reference import load_reference, reference_spec
    from pipeline.proteins.score.report import write_scores

    spec = reference_spec(config.reference, config.reference_limit)  # checked before the folder opens
    if spec is not None:
        load_reference(spec)  # cached in this process; an unusable reference is refused here
    backend = None
    if config.esmfold_path() is not None:
        from pipeline.proteins.score.folding import fold_backend

        backend = fold_backend(config.esmfold_path(), config.fold_recycles).identity()
    settings = {**config.scoring_settings(), "esmfold": str(config.esmfold_path()), "plots": config.plots}
    inputs = fingerprint([inp.fingerprint, spec.key if spec else None, backend])
    with open_run(out_dir, RUN_KIND, settings, inputs, restart=restart) as run:
        scores = score_proteins(inp, config, compute, worker_threads)
        scores.out_dir = run.path
        write_scores(scores, run.path, plots=config.plots)
        return scores
