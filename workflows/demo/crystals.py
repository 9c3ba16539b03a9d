"""The crystal chain of the demo: sanity checks, generate -> relax -> score Perov-5 crystals.

Called by :func:`workflows.demo.run_demo` inside its run folder; see that module for the stages and
outputs. Also holds :func:`quiet_known_warnings`, which both chains use.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from pipeline.common.io import CrystalInput
from pipeline.crystals.score.summary import ScoreSummary
from structures.crystals.roundtrip import roundtrip_report
from structures.data import load_crystals, load_proteins
from workflows.verbs import torch_threads
from workflows.demo.config import GENERATE_BATCH, HULLS, DemoConfig

T = TypeVar("T")


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


def sanity(perov_test: list[Any], n_crystals: int, n_proteins: int) -> dict[str, Any]:
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


def quiet_known_warnings(fn: Callable[..., T]) -> Callable[..., T]:
    """Silence known, harmless third-party warnings that would drown the demo's table."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No Pauling electronegativity")  # noble gases (pymatgen)
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")  # chgnet 0.4.2
            return fn(*args, **kwargs)

    return wrapper


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
class CrystalPart:
    """What the crystal chain hands to the demo summary (stage summaries as in ``demo_summary.json``)."""

    generation: dict[str, Any]
    relaxation: dict[str, Any]
    scores: DemoScores
    scores_as_generated: ScoreSummary | None


def run_crystals(c: DemoConfig, out: Path, ref: CrystalInput, workers: int, wall: dict[str, float], *,
                 progress: bool) -> CrystalPart:
    """Generate ``c.n_generate`` Perov-5 crystals into ``out/generated``, relax them into ``out/relaxed`` and
    score them (and, with ``c.score_unrelaxed``, the unrelaxed ones into ``out/as_generated``) against
    ``ref``; scores and plots go to ``out``. Stage wall times (generate, relax, score) are added to ``wall``."""
    from pipeline.crystals.score.report import write_scores
    from workflows import crystals as verbs

    t = time.perf_counter()
    with torch_threads("demo", c.threads):
        gen = verbs.generate(n=c.n_generate, model="perov_5", out_dir=out / "generated", steps=c.steps,
                             temperature=c.temperature, seed=c.seed, batch_size=GENERATE_BATCH, progress=progress)
    g = gen.summary
    generation = {**g.to_dict(), "out": str(out / "generated")}
    wall["generate"] = time.perf_counter() - t
    if not gen.structures:
        raise RuntimeError(f"none of the {g.n} generated crystals decoded ({g.failures_by_reason})")

    t = time.perf_counter()
    with torch_threads("demo", c.threads):
        relax = verbs.relax(CrystalInput(gen.ids, gen.structures, str(out / "generated")),
                            fmax=c.fmax, max_steps=c.relax_max_steps, out_dir=out / "relaxed", progress=progress)
    relaxation = {**relax.summary.to_dict(), "out": str(out / "relaxed"),
                  "converged_rate": relax.summary.converged_rate, "max_steps": c.relax_max_steps}
    wall["relax"] = time.perf_counter() - t

    t = time.perf_counter()
    status = relax.table["status"].astype(str).to_numpy()
    relaxed_ok = relax.relaxed_mask()
    structures = [s if ok else g0 for s, g0, ok in zip(relax.structures, gen.structures, relaxed_ok)]
    scored = CrystalInput(gen.ids, structures, str(out / "relaxed"))
    score_config = verbs.CrystalScoreConfig(reference=ref, dataset="perov_5", workers=workers, backend="processes")
    as_generated: ScoreSummary | None = None
    if c.score_unrelaxed:
        raw = verbs.score(CrystalInput(gen.ids, gen.structures, "generated"), score_config, progress=progress)
        raw.summary.add_rates_over_all(len(gen.structures), g.n)
        write_scores(raw, out / "as_generated", plots=False)
        as_generated = raw.summary
    with torch_threads("demo", c.threads):  # hull "default" relaxes the Perov-5 val set with CHGNet (cached)
        scores = verbs.score(scored, score_config, progress=progress, hull=c.hull,
                             hull_reference="perov_5:val" if c.hull == "default" else None,
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
    return CrystalPart(generation, relaxation, s, as_generated)


def _pct(v: Any) -> str:
    return f"{100 * v:6.1f} %" if isinstance(v, (int, float)) and np.isfinite(v) else "     - "


def _num(v: Any, fmt: str = "6.3f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and np.isfinite(v) else "     -"


def format_crystals(g: dict[str, Any], r: dict[str, Any], s: DemoScores, raw: ScoreSummary | None) -> list[str]:
    """The crystal lines of the printed report: one metric table (as generated vs relaxed); the stable rate
    with its hull coverage ("upper bound" below 100 %)."""
    from pipeline.crystals.score.report import stability_label

    st = s.stability
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
                     "samples are covered (each element in a hull compound beneath the sample); the others' E_hull "
                     "is partly a formation energy from the elements (a lower bound)")
    lines.append(f"COV-R: share of the {s.n_reference} test crystals matched by one of the {g['n']} samples "
                 "(grows with the number of samples)")
    lines.append(f"hull: {s.hull_name} - {s.hull_note}")
    return lines
