"""The plots of a campaign's export (issue 26: "a report with plots"): PNGs in ``EXPORT/plots/``, listed in
``report.json``.

* ``funnel.png``: the count after each stage (structures after generate / relax, rows after the others), bars.
* ``hist_<column>.png``: for each rank column (without a rank stage: the most telling numeric score columns that
  exist, :data:`DEFAULT_COLUMNS`), a histogram of all scored rows (the table after score, relax columns joined)
  against the exported top K; both on the same bins, ``numpy.histogram_bin_edges`` of the finite values of both,
  clip(sqrt(n), 5, 40) equal bins; missing values are counted in the legend, not drawn.
* ``pareto.png``: after a Pareto rank (Deb et al. 2002, NSGA-II fronts), the first two rank columns of the table
  export read, front 1 marked and joined by its attainment line (a staircase in the columns' directions), the
  top K ringed.

Deterministic: the same table gives the same bytes. The figures are built on matplotlib's Agg canvas directly
(``matplotlib.figure.Figure``, no pyplot state, no backend switch), at a fixed size and ``DPI``, with PNG metadata
``{"Software": None}`` (matplotlib writes no time into a PNG); each file is written atomically
(:func:`structures.atomic.atomic_path`). The campaign hands over the tables and the rank settings it holds
(:mod:`workflows.design.execute`); stage folders ``<i>-<kind>-<key>`` (:mod:`workflows.design.plan`) label the funnel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from structures.atomic import atomic_path
from workflows.design.settings import RankSettings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_COLUMNS", "DPI", "PLOTS_DIR", "campaign_plots", "plot_funnel", "plot_histogram", "plot_pareto"]

PLOTS_DIR = "plots"
DPI = 100
#: the columns histogrammed without a rank stage, those of them that exist (crystals: E_hull and density;
#: proteins: designability scRMSD and the ProteinMPNN columns), then the relax energy
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "crystals": ("e_hull", "density", "relax_energy_per_atom"),
    "proteins": ("scrmsd", "codesign_scrmsd", "mpnn_log_likelihood", "codesign_log_likelihood", "mpnn_recovery",
                 "relax_backbone_rmsd")}


def _figure(width: float = 5.0, height: float = 3.5) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: "Figure", path: Path) -> None:
    """``fig`` as a PNG at ``path``, atomically, without the matplotlib version in its metadata."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def plot_funnel(path: Path, funnel: Sequence[tuple[str, int]]) -> None:
    """Bars of the count after each stage; ``funnel`` holds (stage folder name, count) in stage order."""
    fig = _figure(max(4.0, 0.9 * len(funnel) + 1.5), 3.5)
    ax = fig.add_subplot()
    labels = [_label(name) for name, _ in funnel]
    counts = [int(n) for _, n in funnel]
    x = np.arange(len(counts))
    ax.bar(x, counts, color="tab:blue")
    for xi, n in zip(x, counts):
        ax.annotate(str(n), (xi, n), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("structures / rows")
    ax.set_title("campaign funnel")
    ax.set_ylim(0, max(counts + [1]) * 1.15)
    _save(fig, path)


def plot_histogram(path: Path, column: str, scored: np.ndarray, top: np.ndarray) -> None:
    """Histograms of ``column`` over all scored rows [N] and the exported top K [K], on shared bins."""
    fin_all, fin_top = scored[np.isfinite(scored)], top[np.isfinite(top)]
    both = np.concatenate([fin_all, fin_top])
    edges = np.histogram_bin_edges(both, bins=int(np.clip(np.sqrt(len(both)), 5, 40)))
    fig = _figure()
    ax = fig.add_subplot()

    def label(what: str, v: np.ndarray, fin: np.ndarray) -> str:
        gaps = len(v) - len(fin)
        return f"{what} (n={len(fin)}" + (f", {gaps} missing)" if gaps else ")")

    ax.hist(fin_all, bins=edges, alpha=0.5, color="tab:blue", label=label("all scored", scored, fin_all))
    ax.hist(fin_top, bins=edges, alpha=0.8, color="tab:orange", label=label(f"top {len(top)}", top, fin_top))
    ax.set_xlabel(column)
    ax.set_ylabel("rows")
    ax.set_title(f"{column}: scored vs exported")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_pareto(path: Path, columns: Sequence[str], ascending: Sequence[bool], values: np.ndarray,
                fronts: np.ndarray, top: np.ndarray) -> None:
    """Scatter of two rank columns ``values`` [N, 2] with front 1 (``fronts`` [N] == 1) marked and its attainment
    staircase drawn, the exported rows (``top`` [N] booleans) ringed; ``ascending[j]``: smaller is better."""
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    ok = np.isfinite(values).all(axis=1)
    first = ok & (fronts == 1)
    ax.scatter(values[ok & ~first, 0], values[ok & ~first, 1], s=14, color="0.6", label="other fronts")
    ax.scatter(values[first, 0], values[first, 1], s=22, color="tab:red", label="front 1")
    if first.sum() > 1:  # front 1 sorted by the first column, best first: each next point is better in the second
        f = values[first]
        order = np.lexsort((f[:, 1] * (1 if ascending[1] else -1), f[:, 0] * (1 if ascending[0] else -1)))
        ax.step(f[order, 0], f[order, 1], where="post", color="tab:red", lw=1, alpha=0.7)
    ring = ok & top
    ax.scatter(values[ring, 0], values[ring, 1], s=70, facecolors="none", edgecolors="black",
               label=f"exported ({int(top.sum())})")
    arrow = {True: "smaller is better", False: "larger is better"}
    ax.set_xlabel(f"{columns[0]} ({arrow[bool(ascending[0])]})")
    ax.set_ylabel(f"{columns[1]} ({arrow[bool(ascending[1])]})")
    ax.set_title(f"Pareto fronts ({int(ok.sum())} rows, {len(values) - int(ok.sum())} missing)")
    ax.legend(fontsize=8)
    _save(fig, path)


def _label(folder_name: str) -> str:
    """'03-filter-0a1b2c…' -> '3 filter'."""
    m = re.match(r"(\d+)-([a-z]+)-", folder_name)
    return f"{int(m.group(1))} {m.group(2)}" if m else folder_name


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def campaign_plots(export_dir: Path, material: str, funnel: Sequence[tuple[str, int]], scored: "pd.DataFrame | None",
                   table: "pd.DataFrame", top: "pd.DataFrame", rank: RankSettings | None) -> list[str]:
    """Write the plots of the module docstring into ``export_dir/plots``; returns their paths relative to
    ``export_dir`` in the order written. ``funnel``: (stage folder, count) of every stage, export's last;
    ``scored``: the table after score (relax columns joined; None without a score stage); ``table``: the table
    export read; ``top``: the exported rows; ``rank``: the settings of the last rank stage (None without one)."""
    from workflows.design.select import column_values

    out = export_dir / PLOTS_DIR
    written: list[str] = []

    def path(name: str) -> Path:
        written.append(f"{PLOTS_DIR}/{name}")
        return out / name

    plot_funnel(path("funnel.png"), funnel)
    scored = scored if scored is not None else table
    columns = list(rank.columns) if rank else [c for c in DEFAULT_COLUMNS[material] if c in scored.columns]
    for col in columns:
        if col not in scored.columns or col not in top.columns:
            continue
        a, t = column_values(scored, [col])[:, 0], column_values(top, [col])[:, 0]
        if np.isfinite(a).any() or np.isfinite(t).any():
            plot_histogram(path(f"hist_{_safe(col)}.png"), col, a, t)
    if rank and rank.method == "pareto" and len(rank.columns) >= 2 and "pareto_front" in table.columns:
        cols, asc = list(rank.columns[:2]), list(rank.ascending[:2])
        exported = np.arange(len(table)) < len(top)  # top is the table's head (select.top_rows)
        fronts = column_values(table, ["pareto_front"])[:, 0]
        plot_pareto(path("pareto.png"), cols, asc, column_values(table, cols), fronts, exported)
    return written
