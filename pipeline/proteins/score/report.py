"""Outputs of protein scoring: scores.csv/.parquet, summary.json, tm_matrix.npz, PNG plots, the text
summary (summary.txt, also printed). All writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.common.io import atomic_write, write_table, write_text
from pipeline.proteins.score.summary import ScoredProteins


def _pct(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.1f} %"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "-" if v is None or not np.isfinite(v) else format(v, fmt)


def format_summary(scores: ScoredProteins) -> str:
    """The one-screen text summary."""
    s = scores.summary
    lines = [f"scored {s.n_scored} of {s.n_input} backbones from {s.input}" +
             (f" ({s.n_failed} failed: see the 'problem' column of scores.csv)" if s.n_failed else "")]
    lines.append(f"designability: {s.designability}")
    if s.designable_fraction is not None:
        lines.append(f"  designable {_pct(s.designable_fraction)} ({s.n_designable}/{s.n_scored}), median scRMSD "
                     f"{_num(s.scrmsd_median, '.2f')} A" + (f"; co-design designable "
                                                           f"{_pct(s.codesign_designable_fraction)}"
                                                           if s.codesign_designable_fraction is not None else ""))
    lines.append(f"  offline proxies: MPNN log-likelihood of its designs {_num(s.mpnn_log_likelihood)} nats/residue; "
                 f"of the co-designed sequence {_num(s.codesign_log_likelihood)} "
                 f"({s.n_codesigned} with a sequence); MPNN recovery of it {_pct(s.mpnn_recovery)}")
    lines.append(f"geometry: length {_num(s.length_mean, '.1f')}, Rg {_num(s.radius_of_gyration_mean, '.1f')} A; "
                 f"samples with chain breaks {_pct(s.with_chain_breaks)}, CA-CA outliers "
                 f"{_pct(s.with_ca_ca_outliers)}, clashes {_pct(s.with_clashes)}")
    lines.append(f"secondary structure (DSSP): helix {_pct(s.helix)}, strand {_pct(s.strand)}, coil {_pct(s.coil)}")
    if s.diversity_over:
        lines.append(f"diversity over {s.diversity_over}: {s.n_clusters} clusters / {s.diversity_n} samples = "
                     f"{_num(s.cluster_fraction)}; mean pairwise TM {_num(s.mean_pairwise_tm)}")
    if s.novelty_over:
        lines.append(f"novelty over {s.novelty_over}: {_num(s.novelty)} (mean max TM {_num(s.max_tm_mean)}) vs "
                     f"{s.n_reference} references: {s.novelty_reference}")
    lines.append(f"protocol: {s.protocol.get('inverse_folding', '')}; {s.protocol.get('scrmsd', '')}")
    return "\n".join(lines)


def plot_scores(scores: ScoredProteins, out_dir: str | os.PathLike) -> list[Path]:
    """lengths_rg.png, secondary_structure.png, tm.png (pairwise + novelty), scrmsd.png with folding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir, t, written = Path(out_dir), scores.table, []
    t = t[t["status"] == "scored"] if "status" in t.columns else t

    def save(fig, name: str) -> None:  # noqa: ANN001
        fig.tight_layout()
        written.append(atomic_write(out_dir / name, lambda tmp: fig.savefig(tmp, format="png", dpi=110)))
        plt.close(fig)

    if not len(t):
        return written
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(t["length"], t["radius_of_gyration"], s=8)
    ax.set_xlabel("length (residues)")
    ax.set_ylabel("radius of gyration (A)")
    save(fig, "lengths_rg.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist([t["helix"], t["strand"], t["coil"]], bins=np.linspace(0, 1, 21), label=["helix", "strand", "coil"])
    ax.set_xlabel("fraction of residues (DSSP)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    save(fig, "secondary_structure.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    iu = np.triu_indices(len(scores.tm), 1)
    if len(iu[0]):
        ax.hist(scores.tm[iu], bins=np.linspace(0, 1, 41), alpha=0.6, label="pairwise (diversity set)")
    if "max_tm" in t.columns:
        ax.hist(t["max_tm"].astype(float), bins=np.linspace(0, 1, 41), alpha=0.6, label="max TM to reference")
    ax.axvline(0.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel("TM-score")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    save(fig, "tm.png")

    if "scrmsd" in t.columns:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(t["scrmsd"].astype(float), bins=40)
        ax.axvline(2.0, color="k", lw=0.8, ls="--")
        ax.set_xlabel("best scRMSD over N, CA, C (A)")
        ax.set_ylabel("samples")
        save(fig, "scrmsd.png")
    return written


def write_scores(scores: ScoredProteins, out_dir: str | os.PathLike, plots: bool = True) -> str:
    """scores.csv/.parquet, summary.json, tm_matrix.npz, summary.txt (+ PNGs); returns the text summary."""
    out = Path(out_dir)
    write_table(scores.table, out / "scores")
    write_text(out / "summary.json", scores.summary.to_json())
    atomic_write(out / "tm_matrix.npz", lambda tmp: np.savez(open(tmp, "wb"), tm=scores.tm,
                                                           ids=np.array(scores.tm_ids, dtype=str)))
    text = format_summary(scores)
    write_text(out / "summary.txt", text + "\n")
    if plots:
        plot_scores(scores, out)
    return text
