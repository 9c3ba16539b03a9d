"""Protein generate in shards on a dask cluster (the twin of the crystal shards of
:mod:`workflows.design.distributed`).

:func:`pipeline.proteins.generate.generate_proteins` sorts the planned samples by length and cuts batches by a
residue budget (B x N_max <= ``residue_budget``); batch k draws everything from its own seed,
``batch_seed(seed, k)`` = ``SeedSequence([seed, k])``, so its chains do not depend on the process that samples it.
Shard k is batch k: the campaign process opens the run folder (``run.json``, with the settings and inputs the
verb opens it with), the workers write the batch's PDB files and then ``batches/<k>.json`` atomically, as the
verb does, and the verb, called last, finds every batch done and writes ``samples.fasta`` and the manifests. A
shard is done when its record exists, so a killed worker or campaign loses only the shards in flight.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path
from typing import Any

__all__ = ["generate_proteins_sharded", "protein_batch"]


@lru_cache(maxsize=2)
def _model(model: Any, device: str) -> Any:
    from pipeline.proteins.network.checkpoint import load_protein_model

    return load_protein_model(model, device)


def _plan(config: Any) -> tuple[Any, Any, Any, Any, list[list[int]], dict[str, Any], str]:
    """(model, sampler, plan, inputs, batches, run settings, inputs fingerprint): what :func:`generate_proteins`
    checks and opens its run folder with (:func:`pipeline.proteins.generate.prepare_generation`, the model cached
    per process). InputError on a bad input, before anything is written."""
    from pipeline.proteins.generate import prepare_generation

    return prepare_generation(config, _model(config.model, config.device))


def protein_batch(config: Any, out: str, k: int) -> int:
    """Shard ``k`` of a protein generate run in ``out``: batch k, written as :func:`generate_proteins` writes it
    (its PDB files, then ``batches/<k>.json`` last); nothing when that record exists. Returns the chains written."""
    from pipeline.proteins.generate import _sample_batch, _write_json
    from structures.proteins.io import write_structure

    folder = Path(out)
    record = folder / "batches" / f"{k:05d}.json"
    if record.is_file():
        return 0
    model, sampler, plan, inputs, batches, _, _ = _plan(config)
    batch = _sample_batch(model, plan, batches[k], k, inputs, sampler, config.seed, config.trajectory)
    for row, chain, traj in zip(batch.rows, batch.chains, batch.trajectories):
        write_structure(folder / row["file"], chain)
        if traj is not None:
            write_structure(folder / row["trajectory"], traj)
    _write_json(record, {"batch": k, "rows": batch.rows, "wall_s": batch.wall_s})
    return len(batch.rows)


def generate_proteins_sharded(config: Any, folder: Path, address: str | None, progress: bool) -> int:
    """The missing batches of the protein generate run in ``folder``, one task each on the cluster at
    ``address`` (None: in this process); returns how many shards ran. The caller then calls the verb to finish."""
    from pipeline.common.run import open_run
    from workflows.design.distributed import fan_out

    _, _, _, _, batches, settings, inputs = _plan(config)
    with open_run(folder, "generate-proteins", settings, inputs):
        todo = [k for k in range(len(batches)) if not (folder / "batches" / f"{k:05d}.json").is_file()]
        if todo:
            fan_out(partial(protein_batch, config, str(folder)), todo, address, "generate shards", progress)
    return len(todo)
