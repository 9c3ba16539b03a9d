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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from workflows.design.expressions import Expression
from workflows.design.settings import RankSettings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["filter_rows", "pareto_fronts", "rank_rows", "top_rows", "weighted_scores"]


def filter_rows(table: "pd.DataFrame", expr: Expression) -> "pd.DataFrame":
    """The rows of ``table`` where ``expr`` holds, in table order (index reset)."""
    return table[expr.evaluate(table)].reset_index(drop=True)


def _values(table: "pd.DataFrame", columns: Sequence[str]) -> np.ndarray:
    """The named columns as floats [N, D] (true/false as 1/0, missing as NaN)."""
    import pandas as pd

    cols = [pd.to_numeric(table[c].map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                          errors="coerce").to_numpy(dtype=float) for c in columns]
    return np.stack(cols, axis=1) if cols else np.zeros((len(table), 0))


def weighted_scores(table: "pd.DataFrame", columns: Sequence[str], weights: Sequence[float],
                    ascending: Sequence[bool]) -> np.ndarray:
    """The weighted sum of z-scores [N] (module docstring); larger is better, NaN where a value is missing."""
    x = _values(table, columns)  # [N, D]
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
        fronts = pareto_fronts(_values(out, settings.columns), settings.ascending)
        out["pareto_front"] = fronts
        order = np.argsort(fronts, kind="stable")
    out = out.iloc[order].reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def top_rows(table: "pd.DataFrame", k: int) -> "pd.DataFrame":
    """The first ``k`` rows (all when fewer)."""
    return table.head(k).reset_index(drop=True)
