"""Filter, rank and select (workflows.design.select): Pareto fronts against a brute-force dominance count on random
data (and a wrong dominance rule that the check catches), weighted z-score ranking by hand, ties and NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflows.design import select
from workflows.design.expressions import parse_expression
from workflows.design.select import filter_rows, pareto_fronts, rank_rows, top_rows, weighted_scores
from workflows.design.settings import RankSettings


def brute_force_fronts(v: np.ndarray, ascending: list[bool]) -> np.ndarray:
    """Front k: the rows that no remaining row dominates after fronts < k are removed (plain loops)."""
    n, d = v.shape
    cost = [[(np.inf if np.isnan(v[i, j]) else v[i, j] * (1 if ascending[j] else -1)) for j in range(d)]
            for i in range(n)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    front, left, k = [0] * n, set(range(n)), 0
    while left:
        k += 1
        count = {i: sum(dominates(cost[j], cost[i]) for j in left if j != i) for i in left}
        this = {i for i, c in count.items() if c == 0}
        for i in this:
            front[i] = k
        left -= this
    return np.array(front)


@pytest.mark.parametrize("seed", range(6))
def test_pareto_fronts_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 60)), int(rng.integers(1, 4))
    v = rng.integers(0, 5, (n, d)).astype(float)  # small integers: many ties and equal rows
    v[rng.random((n, d)) < 0.05] = np.nan
    asc = list(rng.random(d) < 0.5)
    np.testing.assert_array_equal(pareto_fronts(v, asc, chunk=7), brute_force_fronts(v, asc))


def test_a_wrong_dominance_rule_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mutant counts 'no worse in every column' as dominance (equal rows then dominate each other)."""
    v = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 0.0], [3.0, 3.0]])
    np.testing.assert_array_equal(pareto_fronts(v, [True, True]), brute_force_fronts(v, [True, True]))

    def weak(values: np.ndarray, ascending: list[bool], chunk: int = 512) -> np.ndarray:
        c = np.asarray(values) * np.where(ascending, 1.0, -1.0)
        dom = (c[:, None] <= c[None]).all(-1) & ~np.eye(len(c), dtype=bool)
        return np.where(dom.any(0), 2, 1)

    monkeypatch.setattr(select, "pareto_fronts", weak)
    assert not np.array_equal(select.pareto_fronts(v, [True, True]), brute_force_fronts(v, [True, True]))


def test_weighted_scores_by_hand() -> None:
    t = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [10.0, 10.0, 40.0], "z": [5.0, np.nan, 5.0]})
    zx = (np.array([1, 2, 3]) - 2) / np.std([1, 2, 3])
    zy = (np.array([10, 10, 40]) - 20) / np.std([10, 10, 40])
    got = weighted_scores(t, ["x", "y"], [2.0, 0.5], [True, False])  # smaller x better, larger y better
    np.testing.assert_allclose(got, -2 * zx + 0.5 * zy)
    got = weighted_scores(t, ["z"], [1.0], [True])  # constant column: 0; missing: NaN
    assert got[0] == 0 and np.isnan(got[1]) and got[2] == 0


def test_rank_rows_orders_best_first_with_ties_in_table_order() -> None:
    t = pd.DataFrame({"id": list("abcde"), "e": [0.3, 0.1, np.nan, 0.1, 0.2], "d": [1.0, 2.0, 3.0, 4.0, 0.0]})
    r = rank_rows(t, RankSettings("weighted", ("e",), (1.0,), (True,)))
    assert r["id"].tolist() == ["b", "d", "e", "a", "c"] and r["rank"].tolist() == [1, 2, 3, 4, 5]
    p = rank_rows(t, RankSettings("pareto", ("e", "d"), (1.0, 1.0), (True, False)))
    # (e min, d max): d dominates b, a and e; c has no e (worst): front 1 = {d, c}? c's d=3 is not beaten by d=4
    # with e missing, so c is dominated by d (e 0.1 < inf, d 4 > 3)
    assert p["pareto_front"].tolist() == sorted(p["pareto_front"].tolist())
    assert p.loc[0, "id"] == "d" and dict(zip(p["id"], p["pareto_front"]))["c"] > 1


def test_filter_and_top() -> None:
    t = pd.DataFrame({"id": list("abcd"), "valid": [True, False, True, True], "density": [1.0, 5.0, np.nan, 4.0]})
    kept = filter_rows(t, parse_expression("valid and density > 0.5"))
    assert kept["id"].tolist() == ["a", "d"] and kept.index.tolist() == [0, 1]
    assert top_rows(t, 2)["id"].tolist() == ["a", "b"] and len(top_rows(t, 10)) == 4


def test_an_empty_table_ranks_and_selects_to_an_empty_table() -> None:
    t = pd.DataFrame({"id": pd.Series([], dtype=str), "x": pd.Series([], dtype=float)})
    for method in ("weighted", "pareto"):
        r = rank_rows(t, RankSettings(method, ("x",), (1.0,), (True,)))
        assert len(r) == 0 and "rank" in r.columns
    assert len(top_rows(filter_rows(t, parse_expression("x > 0")), 3)) == 0
