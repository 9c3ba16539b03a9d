"""Resumable all-atom relax runs of proteins: :func:`relax_proteins` (the twin of the crystal relax run).

Input: what the scorer reads (:func:`pipeline.proteins.score.inputs.as_protein_input`: a PDB / mmCIF file or
folder, BackboneChains, data set ProteinChains, a dict id -> chain, a generation result). An input that cannot be
built (unreadable file, not a structure, missing N / CA / C, non-standard residue, unknown amino acid ``X``) is one
``failed`` row with its reason; so is a chain whose build or minimisation fails. The others are relaxed with
:func:`pipeline.proteins.relax.amber.relax_chain`, over ``workers`` local processes
(:func:`pipeline.common.parallel.parallel_map`, a process pool), ``workers`` chains at a time.

With an ``out_dir`` (a run folder, :func:`pipeline.common.run.open_run`; docs/runs.md): ``relaxed/<id>.pdb`` per
relaxed chain, ``relax_results.csv/.parquet`` and ``relax_summary.json``; each finished chain is appended to
``relax_checkpoint.jsonl`` (after its PDB is written), so an interrupted run resumes where it stopped and a rerun
of a finished one does no work. Every file is written atomically and gets the user's umask.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from pipeline.common.io import read_checkpoint, write_json, write_table, write_text
from pipeline.common.run import fingerprint, open_run
from pipeline.proteins.relax.config import ProteinRelaxConfig
from pipeline.proteins.relax.result import (COLUMNS, INT_COLUMNS, ProteinRelaxResult, ProteinRelaxStatus,
                                            ProteinRelaxSummary, RelaxedProteins, summarize)
from structures.errors import InputError
from structures.ids import safe_id

__all__ = ["CHECKPOINT", "relax_proteins"]

CHECKPOINT = "relax_checkpoint.jsonl"
METHOD = "PDBFixer build + restrained Amber99SB L-BFGS (AlphaFold2 protocol), OpenMM CPU"


def relax_proteins(backbones: Any, config: ProteinRelaxConfig, out_dir: str | os.PathLike | None = None, *,
                   restart: bool = False, progress: bool = True) -> RelaxedProteins:
    """Relax ``backbones`` (module docstring). Without ``out_dir`` nothing is written; with it, a resumable run
    folder. Returns one row per input, in input order, with the caller's ids."""
    from pipeline.proteins.score.inputs import as_protein_input

    inp = as_protein_input(backbones, argument="relax(backbones=...)")
    files = [pdb_name(n) for n in inp.ids]
    if len(set(files)) != len(files):
        raise InputError("relax(backbones=...): two ids give the same output file name; make the ids unique")
    if out_dir is None:
        return _relax(inp, config, None, progress)
    with open_run(out_dir, "relax-proteins", config.run_settings(), fingerprint([inp.fingerprint, inp.ids]),
                  restart=restart) as run:
        return _relax(inp, config, run.path, progress)


def pdb_name(ident: str) -> str:
    """The file name of a chain's model under ``relaxed/``: its id made safe (:func:`structures.ids.safe_id`)."""
    return f"{safe_id(ident)}.pdb"


class _Recorder:
    """Finished chains by id: read back from the checkpoint of an interrupted run, appended to it (and their PDB
    files written first) as they finish."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.pdbs: dict[str, str | None] = {}
        ckpt = out / CHECKPOINT if out is not None else None
        self.done: dict[str, dict[str, Any]] = read_checkpoint(ckpt)
        self.file: IO[str] | None = open(ckpt, "a") if ckpt is not None else None

    def __call__(self, name: str, res: ProteinRelaxResult) -> None:
        row = {"id": name, **res.row()}
        if self.out is not None and res.pdb is not None:
            write_text(self.out / "relaxed" / pdb_name(name), res.pdb)
        if self.file is not None:
            self.file.write(json.dumps(row, default=float) + "\n")
            self.file.flush()
        self.done[name] = row
        self.pdbs[name] = res.pdb

    def pdb(self, name: str) -> str | None:
        """The model of a finished chain (read back from ``relaxed/`` for one of an earlier run)."""
        if name not in self.pdbs and self.out is not None:
            path = self.out / "relaxed" / pdb_name(name)
            self.pdbs[name] = path.read_text() if path.is_file() else None
        return self.pdbs.get(name)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _relax_items(items: list[tuple[Any, ProteinRelaxConfig]]) -> list[ProteinRelaxResult]:
    """Worker: relax (chain, config) items one by one (module-level, so a process pool can pickle it)."""
    from pipeline.proteins.relax.amber import relax_chain

    return [relax_chain(chain, config) for chain, config in items]


def _relax(inp: Any, config: ProteinRelaxConfig, out: Path | None, progress: bool) -> RelaxedProteins:
    from pipeline.common.parallel import parallel_map

    names = inp.ids
    record = _Recorder(out)
    try:
        for i, p in enumerate(inp.problems):
            if p is not None and names[i] not in record.done:
                chain = inp.chains[i]
                record(names[i], ProteinRelaxResult(ProteinRelaxStatus.FAILED, reason=f"bad input: {p}",
                                                    length=len(chain) if chain is not None else 0))
        todo = [i for i, n in enumerate(names) if n not in record.done]
        bar = tqdm(total=len(todo), desc="relax proteins", disable=not progress, leave=False)
        step = config.workers
        for start in range(0, len(todo), step):
            group = todo[start:start + step]
            results = parallel_map(_relax_items, [(inp.chains[i], config) for i in group], workers=config.workers,
                                   backend="processes", chunks_per_worker=1, progress=False)
            for i, res in zip(group, results):
                record(names[i], res)
            bar.update(len(group))
        bar.close()
    finally:
        record.close()
    rows = [record.done[n] for n in names]
    return _result(inp, config, rows, [record.pdb(n) for n in names], out)


def _result(inp: Any, config: ProteinRelaxConfig, rows: list[dict[str, Any]], pdbs: list[str | None],
            out: Path | None) -> RelaxedProteins:
    """The table and summary of the finished rows (in input order); written to ``out`` if given."""
    import pandas as pd

    table = pd.DataFrame([{"id": r["id"], "index": i, **{k: r.get(k) for k in COLUMNS}} for i, r in enumerate(rows)])
    for column in INT_COLUMNS:  # counts stay integers, empty where a chain failed
        table[column] = table[column].astype("Int64")
    if out is not None:
        table["pdb_path"] = [str(Path("relaxed") / pdb_name(r["id"])) if p is not None else ""
                             for r, p in zip(rows, pdbs)]
    summary = ProteinRelaxSummary(**summarize(rows), n_bad_input=sum(p is not None for p in inp.problems),
                                  settings=config.run_settings(), method=METHOD, source=str(inp.source))
    if out is not None:
        write_table(table, out / "relax_results")
        write_json(out / "relax_summary.json", summary.to_dict())
    return RelaxedProteins(ids=[r["id"] for r in rows], table=table, pdbs=pdbs, summary=summary, out_dir=out)

