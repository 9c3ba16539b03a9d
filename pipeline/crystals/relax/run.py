"""Resumable CHGNet relax runs: :class:`CrystalRelaxConfig` and :func:`relax_crystals`.

With an ``out_dir`` (a run folder, :func:`pipeline.common.run.open_run`; docs/runs.md): ``relaxed/<id>.cif`` per
structure, ``relax_results.csv/.parquet`` and ``relax_summary.json``; each finished structure is appended to
``relax_checkpoint.jsonl`` as it finishes, so an interrupted run resumes where it stopped. A structure that cannot
be used (unreadable CIF, non-physical cell, element beyond CHGNet) is a ``failed`` row with its reason; the others
are relaxed (FIRE on a FrechetCellFilter, batched in flight, :class:`~pipeline.crystals.relax.batched.BatchedRelaxer`,
or chgnet's StructOptimizer one by one with ``serial``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.common.io import CrystalInput, read_checkpoint, write_json, write_table, write_text
from pipeline.common.run import fingerprint, open_run
from pipeline.crystals.relax.model import CHGNET_MODELS, DEFAULT_MODEL
from pipeline.crystals.relax.result import RelaxResult, RelaxStatus, RelaxSummary, summarize
from pipeline.crystals.results import RelaxedCrystals
from structures.errors import InputError
from structures.validate import check_bool, check_choice, check_float, check_int

__all__ = ["CHECKPOINT", "CHGNET_MAX_Z", "CrystalRelaxConfig", "relax_crystals"]

CHECKPOINT = "relax_checkpoint.jsonl"
CHGNET_MAX_Z = 94  # CHGNet's element embedding covers H..Pu


@dataclass(frozen=True)
class CrystalRelaxConfig:
    """CHGNet relaxation settings (FlowMM's: fmax 0.1 eV/A, 1,500 FIRE steps, cell relaxed).

    ``chgnet``: the CHGNet version (one of :data:`~pipeline.crystals.relax.model.CHGNET_MODELS`); ``fmax``:
    converged when the largest filtered force (atoms and cell) is below it, eV/A; ``max_steps``: FIRE step limit
    (0: energies at the given geometry); ``batch_size``: structures per CHGNet forward pass; ``relax_cell``: False
    keeps the cell fixed; ``serial``: chgnet's StructOptimizer one structure at a time (the reference).
    """

    chgnet: str = DEFAULT_MODEL
    fmax: float = 0.1
    max_steps: int = 1500
    batch_size: int = 32
    relax_cell: bool = True
    serial: bool = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "chgnet", check_choice(f"{name}.chgnet", self.chgnet, CHGNET_MODELS))
        object.__setattr__(self, "fmax", check_float(f"{name}.fmax", self.fmax, 0.0, strict_minimum=True))
        check_int(f"{name}.max_steps", self.max_steps, minimum=0)
        check_int(f"{name}.batch_size", self.batch_size, minimum=1)
        check_bool(f"{name}.relax_cell", self.relax_cell)
        check_bool(f"{name}.serial", self.serial)

    def run_settings(self) -> dict[str, Any]:
        """The settings a run folder is keyed by and ``relax_summary.json`` reports (keys as the files have
        always had them: ``model`` is the CHGNet version)."""
        return {"model": self.chgnet, "fmax": self.fmax, "max_steps": self.max_steps, "batch_size": self.batch_size,
                "relax_cell": self.relax_cell, "serial": self.serial}


def relax_crystals(structures: Any, config: CrystalRelaxConfig, out_dir: str | os.PathLike | None = None, *,
                   restart: bool = False, progress: bool = True) -> RelaxedCrystals:
    """Relax ``structures`` (anything :func:`pipeline.crystals.inputs.as_crystal_input` takes) with CHGNet.

    Without ``out_dir`` nothing is written; with it, a resumable run folder (module doc). Returns the relaxed
    structures and one table row per input, in input order, with the caller's ids.
    """
    from pipeline.crystals.inputs import as_crystal_input

    inp = as_crystal_input(structures, "relax(structures=...)")
    if len(set(inp.ids)) != len(inp.ids):
        raise InputError("relax(structures=...): structure ids must be unique (they name the output CIF files)")
    inp.require_some_usable()
    if out_dir is None:
        return _relax(inp, config, None, progress)
    with open_run(out_dir, "relax-crystals", config.run_settings(), fingerprint([inp.fingerprint, inp.ids]),
                  restart=restart) as run:
        return _relax(inp, config, run.path, progress)


class _Recorder:
    """Finished structures by id: read back from the checkpoint of an interrupted run, appended to it (and their
    CIFs written) as they finish."""

    def __init__(self, ids: list[str], out: Path | None) -> None:
        self.ids, self.out = ids, out
        ckpt = out / CHECKPOINT if out is not None else None
        self.done: dict[str, dict[str, Any]] = read_checkpoint(ckpt)
        self.file: IO[str] | None = open(ckpt, "a") if ckpt is not None else None

    def __call__(self, res: RelaxResult, idx: int) -> None:
        # the checkpoint keeps the exact structure (a pymatgen dict): a CIF cannot hold two atoms on one site,
        # and pymatgen refuses to read such a file back
        name = self.ids[idx]
        row = {"id": name, **res.row(), "index": idx,
               "structure": res.structure.as_dict() if res.structure is not None else None}
        if self.out is not None and res.structure is not None:
            write_text(self.out / "relaxed" / f"{name}.cif", res.structure.to(fmt="cif"))
        if self.file is not None:
            self.file.write(json.dumps(row, default=float) + "\n")
            self.file.flush()
        self.done[name] = row

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _relax(inp: CrystalInput, config: CrystalRelaxConfig, out: Path | None, progress: bool) -> RelaxedCrystals:
    from pipeline.crystals.relax.batched import BatchedRelaxer
    from pipeline.crystals.relax.serial import relax_serial

    names = inp.ids
    record = _Recorder(names, out)
    problems = inp.usable(max_z=CHGNET_MAX_Z)
    try:
        for i, p in enumerate(problems):
            if p is not None and names[i] not in record.done:
                record(RelaxResult(i, RelaxStatus.FAILED, None, reason=f"bad input: {p}"), i)
        todo = [i for i, n in enumerate(names) if n not in record.done]
        sub = [inp.structures[i] for i in todo]
        if config.serial:
            for j, r in enumerate(relax_serial(sub, model=config.chgnet, fmax=config.fmax,
                                               max_steps=config.max_steps, relax_cell=config.relax_cell,
                                               progress=progress)):
                record(r, todo[j])
        elif sub:
            relaxer = BatchedRelaxer(config.chgnet, fmax=config.fmax, max_steps=config.max_steps,
                                     batch_size=config.batch_size, relax_cell=config.relax_cell)
            relaxer.relax(sub, progress=progress, on_result=lambda r: record(r, todo[r.index]))
    finally:
        record.close()
    return _result(inp, config, [record.done[n] for n in names], sum(p is not None for p in problems), out)


def _result(inp: CrystalInput, config: CrystalRelaxConfig, rows: list[dict[str, Any]], n_bad: int,
            out: Path | None) -> RelaxedCrystals:
    """The table, structures and summary of the finished rows (in input order); written to ``out`` if given."""
    import pandas as pd
    from pymatgen.core import Structure

    names = inp.ids
    structs = [Structure.from_dict(r["structure"]) if r.get("structure") else None for r in rows]
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("cif", "structure")} for r in rows])
    table["index"] = range(len(rows))
    if out is not None:
        table["cif_path"] = [str(Path("relaxed") / f"{n}.cif") if s is not None else "" for n, s in zip(names, structs)]
    results = [RelaxResult(i, RelaxStatus(r["status"]), None, r["e_initial_per_atom"], r["e_final_per_atom"],
                           int(r["n_steps"]), r["fmax_final"], r["reason"] or "") for i, r in enumerate(rows)]
    summary = RelaxSummary(**summarize(results), n_bad_input=n_bad, settings=config.run_settings(),
                           source=inp.source,
                           method="serial StructOptimizer" if config.serial else
                           f"batched in-flight FIRE (batch {config.batch_size})")
    if out is not None:
        write_table(table, out / "relax_results")
        write_json(out / "relax_summary.json", summary.to_dict())
    return RelaxedCrystals(structures=structs, ids=list(names), table=table, summary=summary, out_dir=out)
