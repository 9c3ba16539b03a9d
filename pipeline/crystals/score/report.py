"""Outputs of crystal scoring: CSV + Parquet table, JSON summary, PNG plots (atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.common.io import atomic_write, write_json, write_table
from pipeline.crystals.results import ScoredCrystals
from pipeline.crystals.score.summary import StabilitySummary


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %" if isinstance(v, (int, float)) and np.isfinite(v) else "-"


def hull_coverage_note(stability: StabilitySummary | None) -> str:
    """"" at full hull coverage (or without stability metrics), else "upper bound: hull covers N % of
    samples" (see :func:`pipeline.crystals.score.stability.hull_coverage`)."""
    if stability is None or not stability.stable_rate_is_upper_bound:
        return ""
    return f"upper bound: hull covers {_pct(stability.hull_coverage)} of samples"


def stability_label(stability: StabilitySummary | None, key: str = "stable_rate", name: str = "stable") -> str:
    """One stability number (field ``key``: ``stable_rate`` or ``sun_rate``) with its hull coverage, e.g.
    "stable 48.0 % (upper bound: hull covers 27.0 % of samples)"; plain "stable 48.0 %" when the hull
    covers every sample; "stable -" without stability metrics."""
    note = hull_coverage_note(stability)
    v = getattr(stability, key) if stability is not None else None
    return f"{name} {_pct(float('nan') if v is None else v)}" + (f" ({note})" if note else "")


def plot_scores(scores: ScoredCrystals, out_dir: str | os.PathLike) -> list[Path]:
    """density.png and n_elements.png (scored vs reference), e_hull.png when E_hull was computed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written: list[Path] = []
    t = scores.table

    def save(fig, name: str) -> None:  # noqa: ANN001
        written.append(atomic_write(out_dir / name, lambda tmp: fig.savefig(tmp, format="png", dpi=110)))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    dens = t.loc[t["in_wdist_sample"], "density"].to_numpy()
    ref = scores.reference.get("density", np.array([]))
    both = np.concatenate([dens, ref]) if len(dens) + len(ref) else np.array([0.0, 1.0])
    bins = np.linspace(np.nanmin(both), np.nanmax(both) + 1e-9, 50)
    ax.hist(ref, bins=bins, density=True, alpha=0.5, label=f"reference (n={len(ref)})")
    ax.hist(dens, bins=bins, density=True, alpha=0.5, label=f"scored, valid sample (n={len(dens)})")
    ax.set_xlabel("density (g/cm$^3$)")
    ax.set_ylabel("probability density")
    ax.set_title(f"wdist = {scores.summary.wdist_density:.4g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "density.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    nel = t.loc[t["in_wdist_sample"], "n_elements"].to_numpy()
    refn = scores.reference.get("n_elements", np.array([]))
    top = int(max(nel.max() if len(nel) else 1, refn.max() if len(refn) else 1))
    x = np.arange(1, top + 1)
    ax.bar(x - 0.2, [np.mean(refn == k) if len(refn) else 0 for k in x], 0.4, label="reference")
    ax.bar(x + 0.2, [np.mean(nel == k) if len(nel) else 0 for k in x], 0.4, label="scored, valid sample")
    ax.set_xlabel("number of elements")
    ax.set_ylabel("fraction")
    ax.set_title(f"wdist = {scores.summary.wdist_num_elems:.4g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "n_elements.png")

    if "e_hull" in t.columns:
        fig, ax = plt.subplots(figsize=(5, 3.8))
        eh = t["e_hull"].to_numpy(dtype=float)
        ok = np.isfinite(eh)
        covered = t["hull_covered"].to_numpy(dtype=bool) if "hull_covered" in t.columns else np.ones(len(t), bool)
        bins = np.linspace(-1, 2, 61)
        parts = [(np.clip(eh[ok & covered], -1, 2), "covered: each element in a hull compound beneath"),
                 (np.clip(eh[ok & ~covered], -1, 2), "not covered (an element meets only its reference)")]
        parts = [(x, lab) for x, lab in parts if len(x)]
        if parts:
            ax.hist([x for x, _ in parts], bins=bins, stacked=True, label=[lab for _, lab in parts])
        st = scores.summary.stability
        thr = st.e_hull_threshold if st is not None else 0.0
        ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr} eV/atom")
        ax.set_xlabel("E_hull (eV/atom, clipped to [-1, 2])")
        ax.set_ylabel("count")
        note = hull_coverage_note(st)
        ax.set_title(stability_label(st, name="stable rate") if not note else
                     f"stable rate {_pct(st.stable_rate if st is not None else float('nan'))}\n({note})", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save(fig, "e_hull.png")
    return written


def write_scores(scores: ScoredCrystals, out_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
    """scores.csv, scores.parquet, summary.json (+ PNG plots) in ``out_dir``."""
    out_dir = Path(out_dir)
    csv, pq = write_table(scores.table, out_dir / "scores")
    paths = {"csv": csv, "parquet": pq, "summary": write_json(out_dir / "summary.json", scores.summary.to_dict())}
    if plots:
        for p in plot_scores(scores, out_dir):
            paths[p.stem] = p
    return paths
