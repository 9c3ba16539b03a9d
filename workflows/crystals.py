"""Python entry points for crystals: relax (CHGNet) and score, on lists of pymatgen Structures.

    from workflows.crystals import HullConfig, RelaxConfig, relax_crystals, score_crystals
    relaxed = relax_crystals("samples/", config=RelaxConfig(fmax=0.1), out_dir="runs/relax")   # RelaxRun
    ok = relaxed.relaxed_mask()
    scores = score_crystals([s for s, k in zip(relaxed.structures, ok) if k], "perov_5:test",
                            energies=relaxed.energies_per_atom()[ok],
                            hull=HullConfig("default", reference="perov_5:val"), out_dir="runs/score")

The CLI (``genmatch relax crystals`` / ``genmatch score crystals``) calls these.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.common.io import CrystalInput, read_crystal_input, write_json, write_table, write_text
from pipeline.common.run import fingerprint, open_run
from pipeline.crystals.relax.result import RelaxSummary
from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Composition, Structure

    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.score import CrystalScores, ScoreConfig
    from pipeline.crystals.score.hull import ReferenceHull

CHECKPOINT = "relax_checkpoint.jsonl"


@dataclass
class RelaxRun:
    """``table``: one row per input (id, status, reason, energies per atom, steps, cif path);
    ``structures``: relaxed (or last good) structures, None where none; ``summary``: counts."""

    table: "pd.DataFrame"
    structures: list["Structure | None"]
    summary: "RelaxSummary"

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


CHGNET_MAX_Z = 94  # CHGNet's element embedding covers H..Pu


@dataclass(frozen=True)
class RelaxConfig:
    """CHGNet relaxation settings (FlowMM: fmax 0.1 eV/A, 1,500 FIRE steps, cell relaxed)."""

    model: str = "0.3.0"  # CHGNet version
    fmax: float = 0.1
    max_steps: int = 1500
    batch_size: int = 32
    relax_cell: bool = True
    serial: bool = False  # chgnet's StructOptimizer one by one (the reference implementation)

    def validate(self) -> None:
        if self.model not in CHGNET_MODELS:
            raise InputError(f"unknown CHGNet model {self.model!r}; choose one of {', '.join(CHGNET_MODELS)}")
        if not (math.isfinite(self.fmax) and self.fmax > 0):
            raise InputError(f"fmax must be a finite positive number, got {self.fmax}")
        if self.max_steps < 0 or self.batch_size < 1:
            raise InputError(f"max_steps must be >= 0 and batch_size >= 1, got {self.max_steps}, {self.batch_size}")


CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")


def relax_crystals(structures: "Sequence[Structure] | str | os.PathLike | CrystalInput", *,
                   ids: Sequence[str] | None = None, config: RelaxConfig = RelaxConfig(),
                   out_dir: str | os.PathLike | None = None, restart: bool = False,
                   progress: bool = True) -> RelaxRun:
    """Relax crystals with CHGNet (batched in-flight FIRE, or ``config.serial`` for StructOptimizer).

    With ``out_dir`` (a run folder, :func:`pipeline.common.run.open_run`): ``relaxed/<id>.cif`` per
    structure, ``relax_results.csv/.parquet`` and ``relax_summary.json``; finished structures are
    appended to ``relax_checkpoint.jsonl`` as they finish, so an interrupted run resumes where it
    stopped. A structure that cannot be used (unreadable CIF, non-physical cell, element beyond
    CHGNet) is a ``failed`` row with its reason; the others are relaxed.
    """
    config.validate()
    inp = _as_input(structures)
    names = list(ids) if ids is not None else inp.ids
    if len(names) != len(inp.structures):
        raise InputError(f"{len(names)} ids for {len(inp.structures)} structures")
    if len(set(names)) != len(names):
        raise InputError("structure ids must be unique (they name the output CIF files)")
    inp.require_some_usable()
    if out_dir is None:
        return _relax(inp, names, config, None, progress)
    with open_run(out_dir, "relax-crystals", asdict(config), fingerprint([inp.fingerprint, names]),
                  restart=restart) as run:
        return _relax(inp, names, config, run.path, progress)


def _relax(inp: CrystalInput, names: list[str], config: RelaxConfig, out: Path | None,
           progress: bool) -> RelaxRun:
    import pandas as pd
    from pymatgen.core import Structure

    from pipeline.crystals.relax import BatchedRelaxer, RelaxResult, RelaxStatus, relax_serial, summarize

    done: dict[str, dict[str, Any]] = {}
    ckpt = out / CHECKPOINT if out is not None else None
    if ckpt is not None and ckpt.is_file():
        for line in ckpt.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut by an interruption
                continue
            done[row["id"]] = row
    ckpt_f = open(ckpt, "a") if ckpt is not None else None

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
        done[names[idx]] = row
        return row

    problems = inp.usable(max_z=CHGNET_MAX_Z)
    try:
        for i, p in enumerate(problems):
            if p is not None and names[i] not in done:
                record(RelaxResult(i, RelaxStatus.FAILED, None, reason=f"bad input: {p}"), i)
        todo = [i for i, n in enumerate(names) if n not in done]
        sub = [inp.structures[i] for i in todo]
        if config.serial:
            for j, r in enumerate(relax_serial(sub, model=config.model, fmax=config.fmax, max_steps=config.max_steps,
                                               relax_cell=config.relax_cell, progress=progress)):
                record(r, todo[j])
        elif sub:
            relaxer = BatchedRelaxer(config.model, fmax=config.fmax, max_steps=config.max_steps,
                                     batch_size=config.batch_size, relax_cell=config.relax_cell)
            relaxer.relax(sub, progress=progress, on_result=lambda r: record(r, todo[r.index]))
    finally:
        if ckpt_f is not None:
            ckpt_f.close()

    rows = [done[n] for n in names]
    structs = [Structure.from_dict(r["structure"]) if r.get("structure") else None for r in rows]
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("cif", "structure")} for r in rows])
    table["index"] = range(len(rows))
    if out is not None:
        table["cif_path"] = [str(Path("relaxed") / f"{n}.cif") if s is not None else "" for n, s in zip(names, structs)]
    results = [RelaxResult(i, RelaxStatus(r["status"]), None, r["e_initial_per_atom"], r["e_final_per_atom"],
                           int(r["n_steps"]), r["fmax_final"], r["reason"] or "") for i, r in enumerate(rows)]
    summary = RelaxSummary(**summarize(results), n_bad_input=sum(p is not None for p in problems),
                           settings=asdict(config), source=inp.source,
                           method="serial StructOptimizer" if config.serial else
                           f"batched in-flight FIRE (batch {config.batch_size})")
    if out is not None:
        write_table(table, out / "relax_results")
        write_json(out / "relax_summary.json", summary.to_dict())
    return RelaxRun(table=table, structures=structs, summary=summary)


@dataclass(frozen=True)
class HullConfig:
    """The reference hull for E_hull.

    ``hull``: None/"none" -> no stability metrics; "default" -> MP elemental refs + CHGNet energies of
    ``reference`` (structures or a data set like "perov_5:val"; without one, MP elemental refs only);
    "mp-elements" -> MP elemental refs; a ``.json[.gz]`` path -> entries; a ``.pkl[.gz]`` path ->
    PatchedPhaseDiagram (needs ``trusted=True``: unpickling runs code from the file). ``relax``: relax
    the ``reference`` structures with CHGNet before taking their energies (default) or not.
    """

    hull: "str | os.PathLike | ReferenceHull | None" = None
    trusted: bool = False
    reference: "Sequence[Structure] | str | None" = None
    relax: bool = True

    def validate(self) -> None:
        from pipeline.crystals.score.hull import ReferenceHull

        h = self.hull
        if h is None or isinstance(h, ReferenceHull) or str(h) in ("none", "default", "mp-elements"):
            return
        p = Path(h).expanduser()
        if not p.name.endswith((".pkl", ".pkl.gz", ".pickle", ".json", ".json.gz")):
            raise InputError(f"unknown hull {str(h)!r}: use none, default, mp-elements, a .json[.gz] file of "
                             "ComputedEntry dicts or a PatchedPhaseDiagram .pkl[.gz] (with --trust-pickle)")
        if not p.is_file():
            raise InputError(f"hull file not found: {p}")
        if p.name.endswith((".pkl", ".pkl.gz", ".pickle")) and not self.trusted:
            raise InputError(f"{p}: unpickling a hull runs code from the file; pass --trust-pickle only for a "
                             "file you trust, or give the entries as .json")

    def fingerprint(self) -> list[Any]:
        h = self.hull
        p = Path(str(h)).expanduser() if isinstance(h, (str, os.PathLike)) else None
        return [str(h) if not (p and p.is_file()) else p, self.relax,
                _as_input(self.reference).fingerprint if self.reference is not None else None]


def build_hull(cfg: HullConfig, model: str = "0.3.0", compute: "ComputeConfig | None" = None,
               queries: "Sequence[Composition] | None" = None) -> "ReferenceHull | None":
    """The hull that ``cfg`` describes (see :class:`HullConfig`). ``queries``: the compositions to be
    scored; the default hull then computes only the reference energies that can matter for them."""
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.hull import ReferenceHull

    compute = compute or ComputeConfig()
    cfg.validate()
    hull = cfg.hull
    if hull is None or isinstance(hull, ReferenceHull):
        return hull
    h = str(hull)
    if h == "none":
        return None
    if h == "mp-elements":
        return ReferenceHull.mp_elemental()
    if h == "default":
        if cfg.reference is None:
            return ReferenceHull.mp_elemental()
        ref = _as_input(cfg.reference)
        return ReferenceHull.embedded_default([s for s in ref.structures if s is not None], model=model,
                                             relax=cfg.relax, cache_dir=compute.cache_dir,
                                             progress=compute.progress, name=ref.source, queries=queries)
    p = Path(h).expanduser()
    if p.name.endswith((".pkl", ".pkl.gz", ".pickle")):
        return ReferenceHull.from_ppd_pickle(p, trusted=cfg.trusted)
    return ReferenceHull.from_entries_json(p)


def read_energies(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """Energies per atom by id from a ``relax_results`` CSV/Parquet (``e_final_per_atom``, failed -> NaN).

    Raises :class:`InputError` when the file is missing, unreadable, lacks the columns or an id.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"energies file not found: {p}; give the relax_results.csv of 'genmatch relax crystals'")
    try:
        if p.suffix == ".parquet":  # from bytes: pyarrow cannot open a path that is not valid UTF-8
            import io

            df = pd.read_parquet(io.BytesIO(p.read_bytes()))
        else:
            df = pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - pandas / pyarrow raise many types for unreadable files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{p}: cannot read the energies table ({type(exc).__name__}: {first})") from None
    col = next((c for c in ("e_final_per_atom", "energy_per_atom") if c in df.columns), None)
    if "id" not in df.columns or col is None:
        raise InputError(f"{p}: needs columns 'id' and 'e_final_per_atom' (a relax_results file)")
    try:
        values = pd.to_numeric(df[col], errors="raise").astype(float)
    except (TypeError, ValueError):
        raise InputError(f"{p}: column {col!r} holds values that are not numbers") from None
    if "status" in df.columns:
        values[df["status"].astype(str) == "failed"] = np.nan
    m = dict(zip(df["id"].astype(str), values))
    missing = [i for i in ids if i not in m]
    if missing:
        raise InputError(f"{p}: no energy for {len(missing)} structures (e.g. {missing[0]!r}); ids must "
                         "match the input file names")
    return np.array([m[i] for i in ids], dtype=float)


def score_crystals(structures: "Sequence[Structure] | str | os.PathLike | CrystalInput",
                   reference: "Sequence[Structure] | str | os.PathLike | CrystalInput", *,
                   config: "ScoreConfig | None" = None, compute: "ComputeConfig | None" = None,
                   hull: HullConfig = HullConfig(), energies: "Sequence[float] | str | os.PathLike | None" = None,
                   training: "Sequence[Structure] | str | os.PathLike | None" = None,
                   out_dir: str | os.PathLike | None = None, restart: bool = False,
                   plots: bool = True) -> "CrystalScores":
    """Score crystals against a reference (test) set; see :func:`pipeline.crystals.score.score.score_crystals`
    for the metrics. Inputs may be Structures, a :class:`CrystalInput` (ids), paths or data set names
    ("perov_5:test"; the data set then picks the coverage cutoffs unless ``config.dataset`` is set).

    Inputs that cannot be used (unreadable CIF, non-physical cell) are rows with ``usable`` False and
    their ``problem``; metrics are over the usable ones, and ``<rate>_all`` over all inputs. With
    ``out_dir`` (a run folder): scores.csv/.parquet, summary.json, PNG plots.
    """
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.score import ScoreConfig

    config = config or ScoreConfig()
    compute = compute or ComputeConfig()
    if config.dataset is None and isinstance(reference, str) and ":" in reference:
        config = replace(config, dataset=reference.split(":")[0])
    config.validate()
    hull.validate()
    inp, ref = _as_input(structures), _as_input(reference)
    if not any(p is None for p in ref.problems):
        raise InputError(f"{ref.source}: no usable reference structure")
    if not any(p is None for p in inp.problems):  # before the run folder is opened: nothing is written
        raise InputError(f"{inp.source}: none of the {len(inp)} structures can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})" if len(inp) else f"{inp.source}: no structures")
    e = read_energies(energies, inp.ids) if isinstance(energies, (str, os.PathLike)) else energies
    if e is not None and len(e) != len(inp):
        raise InputError(f"{len(e)} energies for {len(inp)} structures")
    train = _as_input(training) if training is not None else None
    if out_dir is None:
        return _score(inp, ref, config, compute, hull, e, train)
    settings = {**asdict(config), "hull": str(hull.hull), "trusted": hull.trusted, "hull_relax": hull.relax,
                "plots": plots}
    inputs = fingerprint([inp.fingerprint, ref.fingerprint, hull.fingerprint(),
                          None if e is None else np.asarray(e, dtype=float),
                          None if train is None else train.fingerprint])
    with open_run(out_dir, "score-crystals", settings, inputs, restart=restart) as run:
        from pipeline.crystals.score.report import write_scores

        scores = _score(inp, ref, config, compute, hull, e, train)
        write_scores(scores, run.path, plots=plots)
        return scores


def _score(inp: CrystalInput, ref: CrystalInput, config: "ScoreConfig", compute: "ComputeConfig",
           hull: HullConfig, energies: "Sequence[float] | None", train: CrystalInput | None) -> "CrystalScores":
    import pandas as pd

    from pipeline.crystals.score.score import score_crystals as _score_usable

    ok = [i for i, p in enumerate(inp.problems) if p is None]
    structures = [inp.structures[i] for i in ok]
    if not structures:
        raise InputError(f"{inp.source}: none of the {len(inp)} structures can be scored "
                         f"(e.g. {inp.ids[0]}: {inp.problems[0]})")
    h = build_hull(hull, model=config.energy_model, compute=compute, queries=[s.composition for s in structures])
    e = None if energies is None else np.asarray(energies, dtype=float)[ok]
    scores = _score_usable(structures, [s for s in ref.structures if s is not None], config=config,
                           compute=compute, hull=h, energies=e, ids=[inp.ids[i] for i in ok],
                           training=None if train is None else [s for s in train.structures if s is not None])
    scores.table.insert(1, "usable", True)
    scores.table.insert(2, "problem", "")
    bad = [i for i, p in enumerate(inp.problems) if p is not None]
    if bad:
        rows = pd.DataFrame({"id": [inp.ids[i] for i in bad], "usable": False,
                             "problem": [inp.problems[i] for i in bad]})
        scores.table = pd.concat([scores.table, rows], ignore_index=True)
        order = {n: k for k, n in enumerate(inp.ids)}
        scores.table = scores.table.sort_values("id", key=lambda c: c.map(order)).reset_index(drop=True)
    s = scores.summary
    s.n_input, s.n_unusable, s.input, s.reference_source = len(inp), len(bad), inp.source, ref.source
    s.add_rates_over_all(len(ok), len(inp))
    return scores
