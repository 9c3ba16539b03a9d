"""The main job on the embedded defaults (``make demo`` / ``genmatch demo``): the crystal chain of issue 7.

    from workflows.demo import run_demo
    summary = run_demo("runs/demo")        # what `make demo` runs; rerun to resume

Stages (each timed, each with a tqdm bar; all writes atomic):

0. ``sanity``: tokeniser round trip (encode -> decode -> StructureMatcher) of the first Perov-5 /
   Carbon-24 test crystals, and a summary of the protein backbone set (a few seconds).
1. ``generate``: ``n_generate`` (200) Perov-5 crystals from the shipped model ``perov_5`` with the
   default sampler (250 steps, temperature 0.7, seed 0) -> ``OUT/generated`` (CIFs + manifest; decode
   failures counted by reason). Resumable: finished batches are not sampled again.
2. ``relax``: batched in-flight CHGNet FIRE with the cell relaxed (fmax 0.1 eV/A, 1,500 steps) ->
   ``OUT/relaxed`` (CIFs, ``relax_results.csv/.parquet``, ``relax_summary.json``). Resumable.
3. ``score``: the relaxed crystals against Perov-5 test with the CDVAE protocol (structural /
   compositional validity, COV-R / COV-P with the Perov-5 cutoffs, Wasserstein distances of density
   and N_el) and E_hull from the relaxed CHGNet energies. A structure whose relaxation *failed* is
   scored in its generated geometry and flagged (``relax_status`` = failed, ``relaxed`` = False);
   it gets no energy, hence no E_hull and is never counted stable. Structures at the step limit
   are scored in their last geometry with their last energy (``relax_status`` = step_limit).
   The as-generated (unrelaxed) crystals are scored first, the same way without E_hull
   (``OUT/as_generated``), so the effect of relaxation is visible. Fingerprints are cached by
   content hash (``GENMATCH_CACHE``); those of the 3,785 test crystals ship with genmatch
   (``pipeline/score/reference_data``, made by ``tools/make_reference_data.py``), so a cold run
   computes only the samples'. COV-R depends on the number of samples (200 samples against
   3,785 test crystals cover fewer than 1,000 would). Every stability number comes with the hull's
   coverage (share of samples whose chemical system holds a non-elemental reference); below
   100 % the stable rate is reported as an upper bound.

   The hull: ``hull="default"`` (default) is the MP elemental references plus the CHGNet-relaxed
   Perov-5 **val** crystals (the training split) — only those inside the chemical systems of the
   generated crystals, which are the only ones that can change their E_hull (about 260 for 200
   samples; their relaxed energies ship with genmatch, others are relaxed once and cached). ``hull="mp-elements"`` compares with the
   elemental references only: E_hull is then the formation energy with respect to the elements, a
   *lower bound* on the true E_hull (and the stable rate an upper bound).

torch runs with one thread in the demo (``threads``): for 5-atom cells intra-op threads do not pay,
and on 2 shared cores they made sampling 8x and CHGNet 11x slower; the parallel part is the
fingerprints, in ``workers`` processes.

Validity and COV-P are reported over the decoded crystals (the scorer's own keys) and over all
``n_generate`` samples (``*_all`` keys: a decode failure counts as invalid and as a miss), as in
``benchmarks/crystal_model_quality.py``. The printed table uses the ``*_all`` values.

Outputs in ``OUT``: ``scores.csv/.parquet`` (one row per decoded crystal), ``summary.json`` (the
scorer's summary), ``density.png``, ``n_elements.png``, ``e_hull.png``, and ``demo_summary.json``
(all stage summaries, settings and wall times per stage). ``OUT`` is a run folder: its ``run.json``
guards a resumed run against other settings (``restart=True`` discards the previous run).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
import warnings
import copy
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from pipeline.common.io import CrystalInput, read_crystal_input, write_text
from pipeline.common.records import JsonRecord
from pipeline.common.run import open_run
from pipeline.score.summary import ScoreSummary
from structures.crystal_roundtrip import roundtrip_report
from structures.data import load_crystals, load_proteins
from structures.errors import InputError

HULLS = {
    "mp-elements": "MP elemental references only: E_hull = formation energy vs the elements, a lower "
                   "bound on the true E_hull (stable rate: an upper bound)",
    "default": "MP elemental references + CHGNet-relaxed Perov-5 val crystals in the samples' chemical systems",
}
T = TypeVar("T")
GENERATE_BATCH = 50  # crystals per sampler batch: the bar moves and a resumed run loses at most one batch


def _protein_summary(n: int) -> dict[str, Any]:
    ps = load_proteins()
    idx = np.linspace(0, len(ps) - 1, min(n, len(ps))).astype(int)
    chains = [ps[int(i)] for i in idx]
    d = np.concatenate([np.linalg.norm(np.diff(ch.ca, axis=0), axis=1) for ch in chains])
    dssp = "".join(ch.dssp for ch in chains)
    return {
        "chains_in_set": len(ps),
        "chains_summarised": len(chains),
        "length_range": [min(map(len, chains)), max(map(len, chains))],
        "ca_ca_mean_A": float(d.mean()),
        "ca_ca_std_A": float(d.std()),
        "helix_fraction": sum(dssp.count(c) for c in "HGI") / len(dssp),
        "strand_fraction": sum(dssp.count(c) for c in "EB") / len(dssp),
    }


def _sanity(perov_test: list[Any], n_crystals: int, n_proteins: int) -> dict[str, Any]:
    """Tokeniser round trip on the first ``n_crystals`` test crystals of Perov-5 / Carbon-24; protein summary."""
    out: dict[str, Any] = {"roundtrip": {}}
    sets = {"perov_5": perov_test[:n_crystals],
            "carbon_24": load_crystals("carbon_24", "test", limit=n_crystals).structures}
    for name, structures in sets.items():
        rep = roundtrip_report(structures)
        out["roundtrip"][name] = {"n": rep.n, "match_rate": rep.match_rate,
                                  "max_length_error_A": rep.max_length_error, "max_site_error_A": rep.max_site_error}
    out["proteins"] = _protein_summary(n_proteins)
    return out


def _quiet_known_warnings(fn: Callable[..., T]) -> Callable[..., T]:
    """Silence known, harmless third-party warnings that would drown the demo's table."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No Pauling electronegativity")  # noble gases (pymatgen)
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")  # chgnet 0.4.2
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch intra-op threads = ``n`` inside, restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs (defaults: what ``make demo`` runs).

    n_generate / steps / temperature / seed: the sampler (200, 250, 0.7, 0). relax_max_steps / fmax:
    CHGNet FIRE step limit and force threshold (eV/A). hull: "default" (MP elemental refs +
    CHGNet-relaxed Perov-5 val in the samples' chemical systems) or "mp-elements" (elemental refs
    only: a lower bound on E_hull). reference_limit: score against only the first N Perov-5 test
    crystals (None: all 3,785). n_crystals / n_proteins: sizes of the sanity stage.
    score_unrelaxed: also score the as-generated crystals (no E_hull). workers: fingerprint
    processes (None: the CPUs this process may use). threads: torch threads for sampling and CHGNet;
    1 by default: the graphs are tiny (5-atom cells), and with 2 threads on 2 busy cores each small
    op waits for a descheduled thread (measured 8x (sampling) to 11x (CHGNet) slower under load).
    ``workers`` and ``threads`` change speed only, so a resumed run may change them.
    """

    n_generate: int = 200
    steps: int = 250
    temperature: float = 0.7
    seed: int = 0
    relax_max_steps: int = 1500
    fmax: float = 0.1
    hull: str = "default"
    reference_limit: int | None = None
    n_crystals: int = 200
    n_proteins: int = 200
    score_unrelaxed: bool = True
    workers: int | None = None
    threads: int = 1

    def validate(self) -> None:
        if self.n_generate < 1 or self.steps < 1:
            raise InputError(f"n_generate and steps must be >= 1, got {self.n_generate}, {self.steps}")
        if self.hull not in HULLS:
            raise InputError(f"unknown hull {self.hull!r}: choose one of {', '.join(HULLS)}")
        if self.relax_max_steps < 0:
            raise InputError(f"relax_max_steps must be >= 0, got {self.relax_max_steps}")
        if not (np.isfinite(self.temperature) and self.temperature > 0 and np.isfinite(self.fmax) and self.fmax > 0):
            raise InputError("temperature and fmax must be finite positive numbers")

    def settings(self) -> dict[str, Any]:
        """The fields that shape the results (a resumed run must have the same)."""
        return {k: v for k, v in asdict(self).items() if k not in ("workers", "threads")}


@dataclass(kw_only=True)
class DemoScores(ScoreSummary):
    """The relaxed crystals' :class:`ScoreSummary` (``OUT/summary.json``) plus what the demo adds: the hull's
    name and what it is, the sample counts behind the ``_all`` rates, the median E_hull (NaN without one).
    Same flat JSON layout: these fields sit beside the scorer's."""

    hull_name: str
    hull_note: str
    n_generated: int
    n_decode_failed: int
    n_relax_failed_scored_unrelaxed: int
    median_e_hull: float

    @classmethod
    def extend(cls, s: ScoreSummary, **demo: Any) -> "DemoScores":
        """``s``'s fields (shared, not copied) plus the demo's."""
        return cls(**{f.name: getattr(s, f.name) for f in fields(ScoreSummary)}, **demo)


@dataclass
class DemoSummary(JsonRecord):
    """``OUT/demo_summary.json``: every stage's summary, the settings and the wall time per stage.

    ``scores``: the relaxed crystals' scores; ``scores_as_generated``: the unrelaxed ones' (None when not
    scored: ``{}`` in the JSON). Both are written in :class:`ScoreSummary`'s flat layout."""

    out_dir: str
    settings: dict[str, Any]
    roundtrip: dict[str, Any]
    proteins: dict[str, Any]
    generation: dict[str, Any]
    relaxation: dict[str, Any]
    scores: DemoScores
    scores_as_generated: ScoreSummary | None = None
    wall_seconds: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        d["scores"] = self.scores.to_dict()
        raw = self.scores_as_generated
        d["scores_as_generated"] = raw.to_dict() if raw is not None else {}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoSummary":
        d = dict(d)
        if isinstance(d.get("scores"), dict):
            d["scores"] = DemoScores.from_dict(d["scores"])
        raw = d.get("scores_as_generated")
        if isinstance(raw, dict):  # {}: not scored
            d["scores_as_generated"] = ScoreSummary.from_dict(raw) if raw else None
        return super().from_dict(d)


@_quiet_known_warnings
def run_demo(config: DemoConfig = DemoConfig(), out_dir: str | os.PathLike = "runs/demo", *, restart: bool = False,
             progress: bool = True, verbose: bool = True) -> DemoSummary:
    """Generate -> relax -> score Perov-5 crystals with the shipped model; return the demo summary.

    ``out_dir`` is a run folder (:func:`pipeline.common.run.open_run`) holding the stages' run folders
    ``generated/`` and ``relaxed/``: a rerun with the same :meth:`DemoConfig.settings` resumes, other
    settings are refused unless ``restart``.
    """
    from pipeline.common.parallel import ComputeConfig
    from pipeline.score.crystals import ScoreConfig
    from pipeline.score.report import write_scores
    from workflows.crystals import HullConfig, RelaxConfig, relax_crystals, score_crystals
    from workflows.generate import generate_crystals

    config.validate()
    c = config
    workers = c.workers or len(os.sched_getaffinity(0))
    t_start = time.perf_counter()
    wall: dict[str, float] = {}

    t = time.perf_counter()
    ref = read_crystal_input("perov_5:test", limit=c.reference_limit)  # first: a missing data set fails early
    with open_run(out_dir, "demo", {**c.settings(), "generate_batch": GENERATE_BATCH}, ref.fingerprint,
                  restart=restart) as run:
        out = run.path
        sanity = _sanity(ref.structures, c.n_crystals, c.n_proteins)
        wall["sanity"] = time.perf_counter() - t

        t = time.perf_counter()
        with _torch_threads(c.threads):
            gen = generate_crystals(c.n_generate, "perov_5", out_dir=out / "generated", steps=c.steps,
                                    temperature=c.temperature, seed=c.seed, batch_size=GENERATE_BATCH,
                                    progress=progress)
        g = gen.summary
        generation = {**g.to_dict(), "out": str(out / "generated")}
        wall["generate"] = time.perf_counter() - t
        if not gen.structures:
            raise RuntimeError(f"none of the {g.n} generated crystals decoded ({g.failures_by_reason})")

        t = time.perf_counter()
        with _torch_threads(c.threads):
            relax = relax_crystals(CrystalInput(gen.ids, gen.structures, str(out / "generated")),
                                   config=RelaxConfig(fmax=c.fmax, max_steps=c.relax_max_steps),
                                   out_dir=out / "relaxed", progress=progress)
        relaxation = {**relax.summary.to_dict(), "out": str(out / "relaxed"),
                      "converged_rate": relax.summary.converged_rate, "max_steps": c.relax_max_steps}
        wall["relax"] = time.perf_counter() - t

        t = time.perf_counter()
        status = relax.table["status"].astype(str).to_numpy()
        relaxed_ok = relax.relaxed_mask()
        structures = [s if ok else g0 for s, g0, ok in zip(relax.structures, gen.structures, relaxed_ok)]
        scored = CrystalInput(gen.ids, structures, str(out / "relaxed"))
        score_config = ScoreConfig(dataset="perov_5")
        compute = ComputeConfig(workers=workers, backend="processes", progress=progress)
        as_generated: ScoreSummary | None = None
        if c.score_unrelaxed:
            raw = score_crystals(CrystalInput(gen.ids, gen.structures, "generated"), ref, config=score_config,
                                 compute=compute)
            raw.summary.add_rates_over_all(len(gen.structures), g.n)
            write_scores(raw, out / "as_generated", plots=False)
            as_generated = raw.summary
        with _torch_threads(c.threads):  # hull "default" relaxes the Perov-5 val set with CHGNet (cached)
            hull = HullConfig(c.hull, reference="perov_5:val" if c.hull == "default" else None)
            scores = score_crystals(scored, ref, config=score_config, compute=compute, hull=hull,
                                    energies=relax.energies_per_atom())
        scores.table["relax_status"] = status
        scores.table["relaxed"] = relaxed_ok
        scores.table["relax_steps"] = relax.table["n_steps"].to_numpy()
        st = scores.summary.add_rates_over_all(len(gen.structures), g.n).stability
        s = DemoScores.extend(scores.summary, hull_name=c.hull, hull_note=HULLS[c.hull], n_generated=g.n,
                              n_decode_failed=g.decode_failed,
                              n_relax_failed_scored_unrelaxed=int((~relaxed_ok).sum()),
                              median_e_hull=st.e_hull_quantiles.get("0.5", float("nan")) if st is not None
                              else float("nan"))
        scores.summary = s
        write_scores(scores, out)
        wall["score"] = time.perf_counter() - t

        wall["total"] = time.perf_counter() - t_start
        files = sorted({p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
                       | {"demo_summary.json"})
        summary = DemoSummary(out_dir=str(out), settings={**c.settings(), "workers": workers, "threads": c.threads},
                              roundtrip=sanity["roundtrip"], proteins=sanity["proteins"], generation=generation,
                              relaxation=relaxation, scores=s, scores_as_generated=as_generated,
                              wall_seconds={k: round(v, 1) for k, v in wall.items()}, files=files)
        write_text(out / "demo_summary.json", summary.to_json())
    if verbose:
        print(format_summary(summary))
    return summary


def _pct(v: Any) -> str:
    return f"{100 * v:6.1f} %" if isinstance(v, (int, float)) and np.isfinite(v) else "     - "


def _num(v: Any, fmt: str = "6.3f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and np.isfinite(v) else "     -"


def format_summary(summary: DemoSummary) -> str:
    """The demo's printed report: one metric table (as generated vs relaxed) and wall times per stage;
    the stable rate with its hull coverage ("upper bound" below 100 %)."""
    from pipeline.score.report import stability_label

    g, r, s = summary.generation, summary.relaxation, summary.scores
    st, raw = s.stability, summary.scores_as_generated
    lines = [f"genmatch demo: {g['n']} Perov-5 crystals from the shipped model -> CHGNet relax -> scores vs "
             f"Perov-5 test ({s.n_reference} crystals)",
             f"generated {g['n']}: {g['decoded']} decoded, {g['decode_failed']} failed to decode"
             + (f" ({', '.join(f'{k} {v}' for k, v in g['failures_by_reason'].items())})"
                if g["failures_by_reason"] else ""),
             f"relaxed {r['n']}: {r['converged']} converged ({_pct(r['converged_rate']).strip()}), "
             f"{r['step_limit']} at the step limit ({r['max_steps']}), {r['failed']} failed"
             + (" (scored unrelaxed, no E_hull)" if r["failed"] else ""),
             "",
             f"{'metric (over all samples)':30s} {'as generated':>13s} {'relaxed':>10s}"]
    rows = [("struct. valid", "struct_valid_all", _pct), ("comp. valid", "comp_valid_all", _pct),
            ("COV-R", "cov_recall", _pct), ("COV-P", "cov_precision_all", _pct),
            ("wdist density (g/cm^3)", "wdist_density", _num), ("wdist N_el", "wdist_num_elems", _num)]
    for label, key, f in rows:
        lines.append(f"{label:30s} {f(getattr(raw, key)) if raw is not None else '      -':>13s} "
                     f"{f(getattr(s, key)):>10s}")
    lines.append(f"{'relax converged':30s} {'':>13s} {_pct(r['converged_rate']):>10s}")
    lines.append(f"{'median E_hull (eV/atom)':30s} {'':>13s} {_num(s.median_e_hull):>10s}")
    upper = " *" if st is not None and st.stable_rate_is_upper_bound else ""  # footnote: an upper bound
    thr = st.e_hull_threshold if st is not None else 0.0
    lines.append(f"{'stable (E_hull <= ' + str(thr) + ')' + upper:30s} {'':>13s} "
                 f"{_pct(st.stable_rate if st is not None else None):>10s}")
    if st is not None:
        lines.append(f"{'hull coverage':30s} {'':>13s} {_pct(st.hull_coverage):>10s}")
        lines.append(upper.strip() + (" " if upper else "") + stability_label(st)
                     + f": {st.n_hull_covered} of {st.n_hull_coverable} "
                     "samples have a hull compound in their chemical system; the others' E_hull is the formation "
                     "energy from the elements (a lower bound)")
    lines.append(f"COV-R: share of the {s.n_reference} test crystals matched by one of the {g['n']} samples "
                 "(grows with the number of samples)")
    lines.append(f"hull: {s.hull_name} - {s.hull_note}")
    w = summary.wall_seconds
    lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in w.items() if k != "total")
                 + f"; total {w['total']:.0f} s ({w['total'] / 60:.1f} min)")
    rt = summary.roundtrip
    p = summary.proteins
    lines.append("sanity: tokeniser round trip " + ", ".join(
        f"{k} {100 * v['match_rate']:.1f} % of {v['n']}" for k, v in rt.items())
        + f"; proteins: {p['chains_in_set']} chains, CA-CA {p['ca_ca_mean_A']:.3f} +- {p['ca_ca_std_A']:.3f} A")
    lines.append(f"report: {summary.out_dir}/ (demo_summary.json, summary.json, scores.csv/.parquet, PNG plots; "
                 "generated/, relaxed/, as_generated/)")
    return "\n".join(lines)
