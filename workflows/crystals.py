"""Python entry points for crystals: relax (CHGNet) and score, on lists of pymatgen Structures.

    from workflows.crystals import relax_crystals, score_crystals
    relaxed = relax_crystals(structures, out_dir="runs/relax")          # RelaxRun
    scores = score_crystals(relaxed.structures, "perov_5:test", dataset="perov_5",
                            energies=relaxed.table["e_final_per_atom"], hull="default",
                            hull_reference="perov_5:val", out_dir="runs/score")

The CLI (``genmatch relax crystals`` / ``genmatch score crystals``) calls these.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.common.io import CrystalInput, read_crystal_input, write_json, write_table, write_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Composition, Structure

    from pipeline.score.crystals import CrystalScores
    from pipeline.score.hull import ReferenceHull

CHECKPOINT = "relax_checkpoint.jsonl"


@dataclass
class RelaxRun:
    """``table``: one row per input (id, status, reason, energies per atom, steps, cif path);
    ``structures``: relaxed (or last good) structures, None where none; ``summary``: counts."""

    table: "pd.DataFrame"
    structures: list["Structure | None"]
    summary: dict[str, Any]

    def relaxed_mask(self) -> np.ndarray:
        """[N] bool: a relaxed structure exists and the relaxation did not fail."""
        failed = self.table["status"].astype(str).to_numpy() == "failed"
        return np.array([s is not None for s in self.structures]) & ~failed

    def energies_per_atom(self) -> np.ndarray:
        """[N] final CHGNet energy per atom (eV), NaN where :meth:`relaxed_mask` is False."""
        return np.where(self.relaxed_mask(), self.table["e_final_per_atom"].to_numpy(dtype=float), np.nan)


def _as_input(x: "Sequence[Structure] | str | os.PathLike | CrystalInput", split: str | None = None,
              limit: int | None = None) -> CrystalInput:
    if isinstance(x, CrystalInput):
        return x
    if isinstance(x, (str, os.PathLike)):
        return read_crystal_input(x, split=split, limit=limit)
    structures = list(x)[:limit] if limit else list(x)
    return CrystalInput([f"s{i:06d}" for i in range(len(structures))], structures, "python")


def relax_crystals(structures: "Sequence[Structure] | str | os.PathLike | CrystalInput", *,
                   ids: Sequence[str] | None = None, model: str = "0.3.0", fmax: float = 0.1,
                   max_steps: int = 1500, batch_size: int = 32, relax_cell: bool = True,
                   serial: bool = False, out_dir: str | os.PathLike | None = None, resume: bool = True,
                   progress: bool = True) -> RelaxRun:
    """Relax crystals with CHGNet (batched in-flight FIRE, or ``serial=True`` for StructOptimizer).

    With ``out_dir``: ``relaxed/<id>.cif`` per structure, ``relax_results.csv/.parquet`` and
    ``relax_summary.json``; finished structures are appended to ``relax_checkpoint.jsonl`` as they
    finish, so an interrupted run resumes where it stopped (``resume=False`` starts over).
    """
    import pandas as pd
    from pymatgen.core import Structure

    from pipeline.relax import BatchedRelaxer, RelaxResult, RelaxStatus, relax_serial, summarize

    inp = _as_input(structures)
    names = list(ids) if ids is not None else inp.ids
    if len(names) != len(inp.structures):
        raise ValueError(f"{len(names)} ids for {len(inp.structures)} structures")
    if len(set(names)) != len(names):
        raise ValueError("structure ids must be unique (they name the output CIF files)")
    out = Path(out_dir) if out_dir is not None else None
    done: dict[str, dict[str, Any]] = {}
    ckpt = out / CHECKPOINT if out is not None else None
    if ckpt is not None and ckpt.is_file():
        if resume:
            for line in ckpt.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:  # a line cut by an interruption
                    continue
                done[row["id"]] = row
        else:
            ckpt.unlink()
    todo = [i for i, n in enumerate(names) if n not in done]
    ckpt_f = None
    if ckpt is not None:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt_f = open(ckpt, "a")

    def record(res: RelaxResult, idx: int) -> dict[str, Any]:
        # the checkpoint keeps the exact structure (a pymatgen dict): a CIF cannot hold two atoms on
        # one site, and pymatgen refuses to read such a file back
        row = {"id": names[idx], **res.row(), "index": idx,
               "structure": res.structure.as_dict() if res.structure is not None else None}
        if out is not None and res.structure is not None:
            write_text(out / "relaxed" / f"{names[idx]}.cif", res.structure.to(fmt="cif"))
        if ckpt_f is not None:
            ckpt_f.write(json.dumps(row, default=float) + "\n")
            ckpt_f.flush()
        return row

    try:
        sub = [inp.structures[i] for i in todo]
        if serial:
            for j, r in enumerate(relax_serial(sub, model=model, fmax=fmax, max_steps=max_steps,
                                               relax_cell=relax_cell, progress=progress)):
                done[names[todo[j]]] = record(r, todo[j])
        elif sub:
            relaxer = BatchedRelaxer(model, fmax=fmax, max_steps=max_steps, batch_size=batch_size,
                                     relax_cell=relax_cell)
            relaxer.relax(sub, progress=progress,
                          on_result=lambda r: done.__setitem__(names[todo[r.index]], record(r, todo[r.index])))
    finally:
        if ckpt_f is not None:
            ckpt_f.close()

    rows = [done[n] for n in names]
    structs = [Structure.from_dict(r["structure"]) if r.get("structure") else
               Structure.from_str(r["cif"], fmt="cif") if r.get("cif") else None  # "cif": older checkpoints
               for r in rows]
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("cif", "structure")} for r in rows])
    table["index"] = range(len(rows))
    if out is not None:
        table["cif_path"] = [str(Path("relaxed") / f"{n}.cif") if s is not None else "" for n, s in zip(names, structs)]
    results = [RelaxResult(i, RelaxStatus(r["status"]), None, r["e_initial_per_atom"], r["e_final_per_atom"],
                           int(r["n_steps"]), r["fmax_final"], r["reason"] or "") for i, r in enumerate(rows)]
    summary = {**summarize(results), "model": model, "fmax": fmax, "max_steps": max_steps,
               "relax_cell": relax_cell, "method": "serial StructOptimizer" if serial else
               f"batched in-flight FIRE (batch {batch_size})", "source": inp.source}
    if out is not None:
        write_table(table, out / "relax_results")
        write_json(out / "relax_summary.json", summary)
    return RelaxRun(table=table, structures=structs, summary=summary)


def build_hull(hull: "str | os.PathLike | ReferenceHull | None", *, trusted: bool = False,
               hull_reference: "Sequence[Structure] | str | None" = None, hull_relax: bool = True,
               model: str = "0.3.0", cache_dir: str | os.PathLike | None | bool = None,
               progress: bool = True, queries: "Sequence[Composition] | None" = None) -> "ReferenceHull | None":
    """``None``/"none" -> no hull; "default" -> MP elemental refs + CHGNet energies of
    ``hull_reference`` (structures or a data set like "perov_5:val"; without one, MP elemental
    refs only); "mp-elements" -> MP elemental refs; a ``.json[.gz]`` path -> entries; a
    ``.pkl[.gz]`` path -> PatchedPhaseDiagram (needs ``trusted=True``). ``queries``: the compositions to be
    scored; the default hull then computes only the reference energies that can matter for them."""
    from pipeline.score.hull import ReferenceHull

    if hull is None or isinstance(hull, ReferenceHull):
        return hull
    h = str(hull)
    if h == "none":
        return None
    if h == "mp-elements":
        return ReferenceHull.mp_elemental()
    if h == "default":
        if hull_reference is None:
            return ReferenceHull.mp_elemental()
        ref = _as_input(hull_reference)
        return ReferenceHull.embedded_default(ref.structures, model=model, relax=hull_relax,
                                             cache_dir=cache_dir, progress=progress, name=ref.source,
                                             queries=queries)
    p = Path(h).expanduser()
    if p.name.endswith((".pkl", ".pkl.gz", ".pickle")):
        return ReferenceHull.from_ppd_pickle(p, trusted=trusted)
    if p.name.endswith((".json", ".json.gz")):
        return ReferenceHull.from_entries_json(p)
    raise ValueError(f"unknown hull {h!r}: use none, default, mp-elements, a .json[.gz] file of "
                     "ComputedEntry dicts or a PatchedPhaseDiagram .pkl[.gz] (with --trust-pickle)")


def read_energies(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """Energies per atom by id from a ``relax_results`` CSV/Parquet (``e_final_per_atom``, failed -> NaN)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"energies file not found: {p}")
    df = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    col = next((c for c in ("e_final_per_atom", "energy_per_atom") if c in df.columns), None)
    if "id" not in df.columns or col is None:
        raise ValueError(f"{p}: needs columns 'id' and 'e_final_per_atom' (a relax_results file)")
    if "status" in df.columns:
        df.loc[df["status"] == "failed", col] = np.nan
    m = dict(zip(df["id"].astype(str), df[col].astype(float)))
    missing = [i for i in ids if i not in m]
    if missing:
        raise ValueError(f"{p}: no energy for {len(missing)} structures (e.g. {missing[0]!r}); ids must "
                         "match the input file names")
    return np.array([m[i] for i in ids], dtype=float)


def score_crystals(structures: "Sequence[Structure] | str | os.PathLike | CrystalInput",
                   reference: "Sequence[Structure] | str | os.PathLike | CrystalInput", *,
                   dataset: str | None = None, ids: Sequence[str] | None = None,
                   hull: "str | os.PathLike | ReferenceHull | None" = None, trusted: bool = False,
                   hull_reference: "Sequence[Structure] | str | None" = None, hull_relax: bool = True,
                   energies: "Sequence[float] | str | os.PathLike | None" = None,
                   training: "Sequence[Structure] | str | os.PathLike | None" = None,
                   out_dir: str | os.PathLike | None = None, plots: bool = True, **kwargs: Any) -> "CrystalScores":
    """Score crystals against a reference (test) set; see :func:`pipeline.score.crystals.score_crystals`
    for the metrics and ``kwargs`` (cutoffs, n_samples, seed, workers, scheduler, backend,
    cache_dir, e_hull_threshold, energy_model, progress). Inputs may be Structures, paths or data
    set names ("perov_5:test"). With ``out_dir``: scores.csv/.parquet, summary.json, PNG plots."""
    from pipeline.score.crystals import score_crystals as _score
    from pipeline.score.report import write_scores

    inp = _as_input(structures)
    ref = _as_input(reference)
    if dataset is None and isinstance(reference, str) and ":" in reference:
        dataset = reference.split(":")[0]
    names = list(ids) if ids is not None else inp.ids
    e = read_energies(energies, names) if isinstance(energies, (str, os.PathLike)) else energies
    h = build_hull(hull, trusted=trusted, hull_reference=hull_reference, hull_relax=hull_relax,
                   model=kwargs.get("energy_model", "0.3.0"), cache_dir=kwargs.get("cache_dir"),
                   progress=kwargs.get("progress", True), queries=[s.composition for s in inp.structures])
    train = _as_input(training).structures if training is not None else None
    scores = _score(inp.structures, ref.structures, dataset=dataset, ids=names, hull=h, energies=e,
                    training=train, **kwargs)
    scores.summary["input"] = inp.source
    scores.summary["reference_source"] = ref.source
    if out_dir is not None:
        write_scores(scores, out_dir, plots=plots)
    return scores
