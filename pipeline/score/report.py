"""Outputs of crystal scoring: CSV + Parquet table, JSON summary, PNG plots (atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.common.io import atomic_write, write_json, write_table
from pipeline.score.crystals import CrystalScores


def plot_scores(scores: CrystalScores, out_dir: str | os.PathLike) -> list[Path]:
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
    ax.set_title(f"wdist = {scores.summary.get('wdist_density', float('nan')):.4g}")
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
    ax.set_title(f"wdist = {scores.summary.get('wdist_num_elems', float('nan')):.4g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, "n_elements.png")

    if "e_hull" in t.columns:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        eh = t["e_hull"].to_numpy(dtype=float)
        eh = eh[np.isfinite(eh)]
        if len(eh):
            ax.hist(np.clip(eh, -1, 2), bins=60)
        thr = scores.summary.get("e_hull_threshold", 0.0)
        ax.axvline(thr, color="k", ls="--", lw=1, label=f"threshold {thr} eV/atom")
        ax.set_xlabel("E_hull (eV/atom, clipped to [-1, 2])")
        ax.set_ylabel("count")
        ax.set_title(f"stable rate = {scores.summary.get('stable_rate', float('nan')):.3g}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        save(fig, "e_hull.png")
    return written


def write_scores(scores: CrystalScores, out_dir: str | os.PathLike, plots: bool = True) -> dict[str, Path]:
    """scores.csv, scores.parquet, summary.json (+ PNG plots) in ``out_dir``."""
    out_dir = Path(out_dir)
    csv, pq = write_table(scores.table, out_dir / "scores")
    paths = {"csv": csv, "parquet": pq, "summary": write_json(out_dir / "summary.json", scores.summary)}
    if plots:
        for p in plot_scores(scores, out_dir):
            paths[p.stem] = p
    return paths
