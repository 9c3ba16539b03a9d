"""Run a campaign: each stage into its run folder (:mod:`workflows.design.plan`), in order.

generate, relax and score call the Python API (:mod:`workflows.crystals`, :mod:`workflows.proteins`) with the
stage folder as ``out_dir``, so an interrupted stage resumes as its verb does. Between stages everything goes
through files, the same whether a stage ran now or is reused: the structures' folder (``cifs/`` or ``pdb/`` of
generate, ``relaxed/`` of relax), relax's ``relax_results.csv`` (the CHGNet energies score takes for E_hull), and
the table (``scores.parquet`` of score; ``table.parquet`` / ``table.csv`` of filter, deduplicate and rank, in
:mod:`workflows.design.select` order). export writes ``top.csv``, the top K structures,
``structures/<id>.<format>``, and ``report.json``: the funnel (structures or rows after each stage) and the top
ids. A stage's ``stage.json``, written last, marks it finished.

Where the per-item work runs: serially in this process, or, given a dask scheduler address (or ``workers`` > 1,
a local cluster started for the campaign), generate's shards, relax's batches and score's fan-out on that cluster
(:mod:`workflows.design.distributed`, :mod:`workflows.design.relax_shards`), to the same files. One progress line
as each stage starts and one as it ends, with its count of structures or rows (and of shards); the verbs' tqdm
bars in between.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from structures.atomic import atomic_open, atomic_path
from structures.errors import InputError
from structures.version import genmatch_version
from workflows.design.plan import CAMPAIGN_FILE, STAGE_FILE, StagePlan, plan
from workflows.design.settings import RankSettings
from workflows.design.spec import CampaignSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CampaignResult", "run_campaign"]

_STRUCTURE_FOLDERS = {("crystals", "generate"): "cifs", ("proteins", "generate"): "pdb",
                      ("crystals", "relax"): "relaxed", ("proteins", "relax"): "relaxed"}
_SUFFIX = {"crystals": ".cif", "proteins": ".pdb"}
LOCK_FILE = ".design.lock"


@dataclass
class _State:
    """What the next stage reads: the structures' folder, relax energies, the current table (and, for export,
    the table after score and the last rank's settings)."""

    structures: Path | None = None
    energies: Path | None = None
    table: "pd.DataFrame | None" = None
    funnel: tuple[tuple[str, int], ...] = ()  # (stage folder, structures or rows after it)
    scored: "pd.DataFrame | None" = None  # the table after score (for the export's plots)
    rank: RankSettings | None = None  # the settings of the last rank stage


@dataclass
class CampaignResult:
    """A finished campaign: its folder, the plan it ran, the final table, the exported folder (None without
    an export stage), the stages that ran and their wall times (s)."""

    folder: Path
    plans: list[StagePlan]
    table: "pd.DataFrame | None" = None
    export_dir: Path | None = None
    ran: list[int] = field(default_factory=list)
    seconds: dict[int, float] = field(default_factory=dict)  # wall time of each stage that ran, by index


def _write_table(table: "pd.DataFrame", folder: Path, name: str = "table") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{name}.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(folder / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)


def _load(material: str, p: StagePlan, state: _State) -> _State:
    """The state after stage ``p`` from its folder (module docstring)."""
    import pandas as pd

    kind = p.stage.kind
    if (material, kind) in _STRUCTURE_FOLDERS:
        state = dataclasses.replace(state, structures=p.folder / _STRUCTURE_FOLDERS[(material, kind)])
    if kind == "relax":
        state = dataclasses.replace(state, energies=p.folder / "relax_results.csv")
    if kind == "score":  # with a relax stage, its relax_ columns joined by id (select.join_relax)
        from workflows.design.select import scored_table

        table = scored_table(p.folder, state.energies, material)
        state = dataclasses.replace(state, table=table, scored=table)
    if kind in ("filter", "deduplicate", "rank"):
        state = dataclasses.replace(state, table=pd.read_parquet(p.folder / "table.parquet"))
    if kind == "rank":
        state = dataclasses.replace(state, rank=p.stage.config)
    if kind == "export":
        state = dataclasses.replace(state, table=pd.read_parquet(p.folder / "top.parquet"))
    if kind in ("generate", "relax"):
        count = len(list(state.structures.glob(f"*{_SUFFIX[material]}"))) if state.structures is not None else 0
    else:
        count = len(state.table) if state.table is not None else 0
    return dataclasses.replace(state, funnel=state.funnel + ((p.folder.name, count),))


def _structure_file(material: str, state: _State, ident: str) -> Path | None:
    f = state.structures / f"{ident}{_SUFFIX[material]}" if state.structures is not None else None
    return f if f is not None and f.is_file() else None


def _verb(material: str, p: StagePlan, state: _State, run: _Run) -> str:
    """generate / relax / score through the Python API into the stage folder; with a cluster (``run.address``),
    their per-item work on it first (:mod:`workflows.design.distributed`, :mod:`workflows.design.relax_shards`).
    Returns a note for the progress line."""
    from workflows import crystals, proteins

    api: Any = crystals if material == "crystals" else proteins
    kind, config, out, address = p.stage.kind, p.stage.config, p.folder, run.address
    verb = dict(out_dir=out, threads=run.threads, progress=run.progress)
    note = ""
    if kind == "generate":
        if address is not None:
            from workflows.design.distributed import generate_sharded

            note = f", {generate_sharded(material, config, out, address, run.progress)} shards on the cluster"
        api.generate(config, **verb)  # serial, or (every shard done) the manifest
    elif kind == "relax":
        if address is not None:
            from workflows.design.relax_shards import relax_crystals_sharded, relax_proteins_sharded

            shard = relax_crystals_sharded if material == "crystals" else relax_proteins_sharded
            note = f", {shard(state.structures, config, out, address, run.workers, run.progress)} shards on the cluster"
        api.relax(str(state.structures), config, **verb)  # serial, or (every shard merged) the table
    else:
        if material == "crystals" and state.energies is not None and config.energies is None:
            config = dataclasses.replace(config, energies=str(state.energies))
        if address is not None and config.dask_scheduler is None:
            config = dataclasses.replace(config, dask_scheduler=address, workers=max(config.workers, run.workers))
            note = ", fingerprints and energies on the cluster"
        api.score(str(state.structures), config, **verb)
    return note


def _export(material: str, p: StagePlan, state: _State) -> None:
    """``top.csv`` / ``top.parquet``, the top K structures in each format (files copied or converted), with
    ``plots`` the PNGs of :mod:`workflows.design.report` in ``plots/``, and ``report.json``: the funnel
    (structures or rows after each stage), the top ids and the plot files."""
    from workflows.design.select import top_rows

    settings = p.stage.config
    top = top_rows(state.table, settings.top_k)
    folder = p.folder / "structures"
    folder.mkdir(parents=True, exist_ok=True)
    for fmt in settings.formats:
        names = []
        for ident in top["id"].astype(str):
            src = _structure_file(material, state, ident)
            if src is None:
                names.append("")
                continue
            dst = folder / f"{ident}.{fmt}"
            with atomic_path(dst) as tmp:
                if src.suffix == f".{fmt}":
                    shutil.copyfile(src, tmp)
                else:  # crystals: CIF -> POSCAR
                    from pymatgen.core import Structure

                    Structure.from_file(str(src)).to(filename=str(tmp), fmt=fmt)
            names.append(str(dst.relative_to(p.folder)))
        top[f"file_{fmt}"] = names
    _write_table(top, p.folder, "top")
    funnel = list(state.funnel) + [(p.folder.name, len(top))]
    plots: list[str] = []
    if settings.plots:  # PNGs in plots/ (workflows.design.report)
        from workflows.design.report import campaign_plots

        plots = campaign_plots(p.folder, material, funnel, state.scored, state.table, top, state.rank)
    report = {"funnel": [{"stage": name, "count": n} for name, n in funnel], "top": top["id"].astype(str).tolist(),
              "plots": plots}
    with atomic_open(p.folder / "report.json") as f:
        f.write(json.dumps(report, indent=1) + "\n")


def _execute(material: str, p: StagePlan, state: _State, run: _Run) -> tuple[str, float]:
    """Run stage ``p`` into its folder and mark it finished (``stage.json``); returns a note for the progress line
    and the stage's wall time (s)."""
    from workflows.design.dedupe import deduplicate
    from workflows.design.select import filter_rows, rank_rows

    kind, config, t0 = p.stage.kind, p.stage.config, time.perf_counter()
    p.folder.mkdir(parents=True, exist_ok=True)
    (p.folder / STAGE_FILE).unlink(missing_ok=True)
    note = ""
    if kind in ("generate", "relax", "score"):
        note = _verb(material, p, state, run)
    elif kind == "filter":
        _write_table(filter_rows(state.table, config.expr), p.folder)
    elif kind == "deduplicate":
        _write_table(deduplicate(state.table, lambda i: _structure_file(material, state, i), material, config),
                     p.folder)
    elif kind == "rank":
        _write_table(rank_rows(state.table, config), p.folder)
    else:
        _export(material, p, state)
    wall = time.perf_counter() - t0
    record = {"key": p.key, "index": p.stage.index, "kind": kind, "settings": p.stage.settings,
              "genmatch": genmatch_version()}  # no clock in it: the export folder is byte-identical between runs
    with atomic_open(p.folder / STAGE_FILE) as f:
        f.write(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return note, wall


@dataclass(frozen=True)
class _Run:
    """How the stages run: torch ``threads`` here, ``progress`` lines and bars, the cluster's scheduler
    ``address`` (None: serial, in this process) and its number of ``workers`` (for the relax shards' size)."""

    threads: int | None = None
    progress: bool = True
    address: str | None = None
    workers: int = 1

    def where(self) -> str:
        """Where the per-item work runs, for the progress lines."""
        if self.address is None:
            return "in this process"
        return f"on the dask cluster at {self.address}" + (f" ({self.workers} workers)" if self.workers > 1 else "")


def run_campaign(spec: CampaignSpec, campaign_dir: str | os.PathLike, *, threads: int | None = None,
                 progress: bool = True, workers: int = 1, dask_scheduler: str | None = None) -> CampaignResult:
    """Run (or resume) the campaign ``spec`` in ``campaign_dir``: reused stages are read, the others run in order
    (module docstring). ``dask_scheduler``: generate, relax and score do their per-item work on that
    dask.distributed cluster (checked first: InputError if nothing answers there); else ``workers`` > 1 on a local
    cluster of that many processes (:mod:`workflows.design.distributed`); the files are the same either way.
    Returns the final table and where the export went."""
    from pipeline.common.parallel import check_scheduler
    from structures.validate import check_int

    check_int("design workers (--workers)", workers, minimum=1)
    if dask_scheduler is not None:
        check_scheduler(dask_scheduler)
    d = Path(campaign_dir)
    plans = plan(spec, d)  # refuses another campaign's folder before anything is written
    d.mkdir(parents=True, exist_ok=True)
    if not (d / CAMPAIGN_FILE).exists():
        with atomic_open(d / CAMPAIGN_FILE) as f:
            f.write(json.dumps({"name": spec.name, "material": spec.material, "format": 1,
                                "spec": spec.source}, indent=1) + "\n")
    from workflows.design.distributed import campaign_cluster

    parallel = any(p.status == "run" and p.stage.kind in ("generate", "relax", "score") for p in plans)
    with _campaign_lock(d), campaign_cluster(workers if parallel else 1, dask_scheduler) as address:
        return _run_stages(spec, d, plan(spec, d), _Run(threads, progress, address, workers))


@contextlib.contextmanager
def _campaign_lock(d: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``CAMPAIGN/.design.lock`` while the campaign runs: a second process is refused."""
    import fcntl

    with open(d / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"campaign folder {d}: another genmatch design is running in it; wait for it or "
                             "give another folder") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_stages(spec: CampaignSpec, d: Path, plans: list[StagePlan], run: _Run) -> CampaignResult:
    """Each stage in order, reused or run; one progress line as a stage starts and one as it ends, with its
    count of structures or rows."""
    state, ran, export_dir, seconds = _State(), [], None, {}

    def say(p: StagePlan, text: str) -> None:
        if run.progress:
            print(f"genmatch design: [{p.stage.index + 1}/{len(plans)}] {p.stage.kind}: {text}", file=sys.stderr,
                  flush=True)

    for p in plans:
        note = ""
        if p.status == "run":
            parallel = p.stage.kind in ("generate", "relax", "score")
            say(p, f"running ({p.folder.name})" + (f" {run.where()}" if parallel else ""))
            note, seconds[p.stage.index] = _execute(spec.material, p, state, run)
            ran.append(p.stage.index)
        state = _load(spec.material, p, state)
        count = f"{state.funnel[-1][1]} {'structures' if p.stage.kind in ('generate', 'relax') else 'rows'}"
        say(p, f"reused ({p.folder.name}), {count}" if p.status == "reuse" else f"done, {count}{note}")
        if p.stage.kind == "export":
            export_dir = p.folder
    return CampaignResult(d, plans, state.table, export_dir, ran, seconds)
