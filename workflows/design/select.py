"""Filter, rank and select the rows of a score table: pure pandas / numpy, no structures.

* :func:`filter_rows`: the rows where a filter expression holds (:mod:`workflows.design.expressions`).
* :func:`weighted_scores`: s = sum_j w_j d_j z_j over the named columns, z_j = (x_j - mean_j) / std_j (population
  std over the rows with a value; a constant column contributes 0), d_j = -1 where smaller is better, +1 where larger
  is. A row missing any value gets NaN and ranks last.
* :func:`pareto_fronts`: non-dominated sorting (Deb et al. 2002, NSGA-II): front 1 holds the rows no other row
  dominates, front k those that only rows of fronts < k dominate. Row a dominates b when it is no worse in every
  column and better in one (after the columns' directions); a missing value is the worst value.
* :func:`rank_rows`: the table reordered best first, with ``rank`` (1 = best) and ``rank_score`` (weighted) or
  ``pareto_front`` (pareto); ties keep table order (a stable sort).
* :func:`top_rows`: the first K rows.
* :func:`join_relax` / :func:`scored_table`: the score table with a relax stage's per-structure results joined to
  it by id (:data:`workflows.design.settings.RELAX_COLUMNS`), in the score table's row order; a structure that
  failed relax (or has no relax row) gets NaN numbers, and ``relax_converged`` false (missing, None, without a row).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from workflows.design.expressions import Expression
from workflows.design.settings import RELAX_COLUMNS, RankSettings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["column_values", "filter_rows", "join_relax", "pareto_fronts", "rank_rows", "relax_columns", "scored_table",
           "top_rows", "weighted_scores"]


def filter_rows(table: "pd.DataFrame", expr: Expression) -> "pd.DataFrame":
    """The rows of ``table`` where ``expr`` holds, in table order (index reset)."""
    return table[expr.evaluate(table)].reset_index(drop=True)


def column_values(table: "pd.DataFrame", columns: Sequence[str]) -> np.ndarray:
    """The named columns as floats [N, D] (true/false as 1/0, missing as NaN)."""
    import pandas as pd

    cols = [pd.to_numeric(table[c].map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                          errors="coerce").to_numpy(dtype=float) for c in columns]
    return np.stack(cols, axis=1) if cols else np.zeros((len(table), 0))


def weighted_scores(table: "pd.DataFrame", columns: Sequence[str], weights: Sequence[float],
                    ascending: Sequence[bool]) -> np.ndarray:
    """The weighted sum of z-scores [N] (module docstring); larger is better, NaN where a value is missing."""
    x = column_values(table, columns)  # [N, D]
    total = np.zeros(len(table))
    for j, (w, asc) in enumerate(zip(weights, ascending)):
        col = x[:, j]
        ok = np.isfinite(col)
        mean = col[ok].mean() if ok.any() else 0.0
        std = col[ok].std() if ok.any() else 0.0
        z = (col - mean) / std if std > 0 else np.where(ok, 0.0, np.nan)
        total = total + w * (-1.0 if asc else 1.0) * z
    return total


def pareto_fronts(values: np.ndarray, ascending: Sequence[bool], chunk: int = 512) -> np.ndarray:
    """Front index [N] (1 = non-dominated) of the rows of ``values`` [N, D]; ``ascending[j]``: smaller is better
    in column j. Peels one front at a time; each pass compares the remaining rows pairwise in chunks of ``chunk``
    rows ([chunk, R, D] booleans), O(F N^2 D) for F fronts."""
    v = np.asarray(values, dtype=float)
    sign = np.where(np.asarray(ascending, dtype=bool), 1.0, -1.0)
    cost = np.where(np.isnan(v), np.inf, v * sign)  # minimise every column; missing = worst
    n = len(cost)
    front = np.zeros(n, dtype=np.int64)
    left = np.arange(n)
    k = 0
    while len(left):
        k += 1
        c = cost[left]  # [R, D]
        dominated = np.zeros(len(left), dtype=bool)
        for s in range(0, len(left), chunk):
            a = c[s:s + chunk, None, :]  # [C, 1, D] candidates that may dominate
            dom = (a <= c[None]).all(-1) & (a < c[None]).any(-1)  # [C, R]: row s+i dominates row r
            dominated |= dom.any(0)
        front[left[~dominated]] = k
        left = left[dominated]
    return front


def rank_rows(table: "pd.DataFrame", settings: RankSettings) -> "pd.DataFrame":
    """``table`` best first with ``rank`` 1..N and ``rank_score`` (weighted) or ``pareto_front`` (pareto)."""
    out = table.reset_index(drop=True).copy()
    if settings.method == "weighted":
        score = weighted_scores(out, settings.columns, settings.weights, settings.ascending)
        out["rank_score"] = score
        order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    else:
        fronts = pareto_fronts(column_values(out, settings.columns), settings.ascending)
        out["pareto_front"] = fronts
        order = np.argsort(fronts, kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def top_rows(table: "pd.DataFrame", k: int) -> "pd.DataFrame":
    """The first ``k`` rows (all when fewer)."""
    return table.head(k).reset_index(drop=True)


#: per material: the status that counts as converged, the energy columns (before, after) and the other numbers
_RELAX_SOURCE: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "crystals": ("converged", "e_initial_per_atom", "e_final_per_atom",
                 {"relax_steps": "n_steps", "relax_fmax": "fmax_final"}),
    "proteins": ("relaxed", "energy_before_per_residue", "energy_after_per_residue",
                 {f"relax_{c}": c for c in ("clashes_after", "bond_violations_after", "bb_clashes_after",
                                            "backbone_rmsd", "outer_iterations", "n_unrestrained")})}


def relax_columns(material: str, relax: "pd.DataFrame") -> "pd.DataFrame":
    """The ``relax_`` columns [M, C] of relax's table ``relax_results`` [M rows], indexed by the id score gives
    the relaxed structure (its file's stem, ``cif_path`` / ``pdb_path``; the relax id where it has none).
    ``relax_converged`` = status is converged (crystals) / relaxed (proteins); energy = the final energy,
    its drop = initial - final (per atom or residue); numbers as floats, NaN where the relaxation failed."""
    import pandas as pd

    converged, before, after, numbers = _RELAX_SOURCE[material]
    names = list(RELAX_COLUMNS[material])
    status = relax["status"].astype(str).to_numpy()
    failed = status == "failed"

    def num(col: str) -> np.ndarray:
        v = pd.to_numeric(relax[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return np.where(failed, np.nan, v)

    out = pd.DataFrame({names[0]: status == converged, names[1]: num(after), names[2]: num(before) - num(after),
                        **{k: num(v) for k, v in numbers.items()}})
    path_col = "cif_path" if material == "crystals" else "pdb_path"
    paths = relax[path_col].fillna("").astype(str) if path_col in relax.columns else pd.Series([""] * len(relax))
    out.index = [Path(p).stem if p else str(i) for p, i in zip(paths, relax["id"].astype(str))]
    return out[names]


def join_relax(scores: "pd.DataFrame", relax: "pd.DataFrame", material: str) -> "pd.DataFrame":
    """``scores`` [N rows, in its order] with the :func:`relax_columns` of ``relax`` joined by id (a left join,
    the first relax row of an id); a score row without a relax row gets NaN and ``relax_converged`` None."""
    extra = relax_columns(material, relax)
    extra = extra[~extra.index.duplicated(keep="first")]
    ids = scores["id"].astype(str).to_numpy()
    found = np.isin(ids, extra.index.to_numpy())
    rows = extra.reindex(ids)
    out = scores.reset_index(drop=True).drop(columns=[c for c in extra.columns if c in scores.columns])
    for c in extra.columns:
        v = rows[c].to_numpy()
        if c == "relax_converged":
            v = v.astype(bool) if found.all() else np.array(
                [bool(x) if ok else None for x, ok in zip(v, found)], dtype=object)
        else:
            v = v.astype(float)
        out[c] = v
    return out


def scored_table(score_dir: Path, relax_results: Path | None, material: str) -> "pd.DataFrame":
    """The campaign's table after score: ``score_dir/scores.parquet``, joined (:func:`join_relax`) with the relax
    table ``relax_results`` (its ``.parquet``) when the campaign has a relax stage."""
    import pandas as pd

    table = pd.read_parquet(Path(score_dir) / "scores.parquet")
    if relax_results is None:
        return table
    return join_relax(table, pd.read_parquet(Path(relax_results).with_suffix(".parquet")), material)
