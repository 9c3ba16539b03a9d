"""Safe filter expressions (workflows.design.expressions): random expressions against two references (a tree
evaluator with the NaN rule, and Python's own parser on rows without NaN), the error positions, injection attempts,
and a deliberately wrong parser (and / or precedence swapped) that the random check catches."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from structures.errors import InputError
from workflows.design import expressions
from workflows.design.expressions import BOOL, NUM, STR, parse_expression

NUM_COLS, BOOL_COLS = ("a", "b", "c"), ("p", "q")
# precedence levels: or 1, and 2, not 3, compare 4, sum 5, product 6, unary 7, atom 8
LEVEL = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "neg": 7}


def _num() -> st.SearchStrategy:
    leaf = st.one_of(st.sampled_from(NUM_COLS).map(lambda c: ("col", c)),
                     st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]).map(lambda v: ("num", v)))
    return st.recursive(leaf, lambda sub: st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*"]), sub, sub), st.tuples(st.just("neg"), sub),
        st.tuples(st.just("abs"), sub)), max_leaves=4)


def _bool() -> st.SearchStrategy:
    cmp = st.tuples(st.just("cmp"), st.lists(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), min_size=1,
                                             max_size=2), st.lists(_num(), min_size=3, max_size=3))
    leaf = st.one_of(st.sampled_from(BOOL_COLS).map(lambda c: ("bcol", c)), st.booleans().map(lambda v: ("lit", v)),
                     cmp.map(lambda t: (t[0], t[1], t[2][:len(t[1]) + 1])))
    return st.recursive(leaf, lambda sub: st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), sub, sub), st.tuples(st.just("not"), sub)), max_leaves=6)


def render(n: tuple, need: int = 0) -> str:
    """The text of tree ``n`` with the fewest parentheses (Python's precedence)."""
    op = n[0]
    if op in ("col", "bcol"):
        return n[1]
    if op == "num":
        return repr(n[1])
    if op == "lit":
        return "true" if n[1] else "false"
    if op == "abs":
        return f"abs({render(n[1])})"
    level = LEVEL[op]
    if op in ("and", "or", "+", "-", "*"):
        text = f"{render(n[1], level)} {op} {render(n[2], level + 1)}"
    elif op == "not":
        text = f"not {render(n[1], level)}"
    elif op == "neg":
        text = f"-{render(n[1], level)}"
    else:  # a comparison chain: operands are sums
        text = " ".join([render(n[2][0], 5)] + [f"{o} {render(x, 5)}" for o, x in zip(n[1], n[2][1:])])
    return f"({text})" if level < need else text


def reference(n: tuple, row: dict[str, Any]) -> Any:
    """Scalar evaluation of tree ``n`` on one row: a comparison with a missing value is false."""
    op = n[0]
    if op in ("col", "bcol"):
        return row[n[1]]
    if op in ("num", "lit"):
        return n[1]
    if op == "abs":
        return abs(reference(n[1], row))
    if op == "neg":
        return -reference(n[1], row)
    if op == "not":
        return not reference(n[1], row)
    if op in ("and", "or"):
        a, b = reference(n[1], row), reference(n[2], row)
        return (a and b) if op == "and" else (a or b)
    if op in ("+", "-", "*"):
        a, b = reference(n[1], row), reference(n[2], row)
        return a + b if op == "+" else a - b if op == "-" else a * b
    vals = [reference(x, row) for x in n[2]]
    ok = True
    for o, x, y in zip(n[1], vals, vals[1:]):
        if math.isnan(x) or math.isnan(y):
            return False
        ok = ok and {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y, "!=": x != y}[o]
    return ok


def table(with_nan: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    vals = [0.0, 0.5, 1.0, 2.0, 3.0, -1.0] + ([np.nan] if with_nan else [])
    n = 40
    return pd.DataFrame({**{c: rng.choice(vals, n) for c in NUM_COLS},
                         **{c: rng.random(n) < 0.5 for c in BOOL_COLS}})


T_NAN, T_FULL = table(True), table(False)


def mismatches(tree: tuple) -> list[str]:
    text = render(tree)
    got = parse_expression(text).evaluate(T_NAN)
    want = np.array([bool(reference(tree, r)) for r in T_NAN.to_dict("records")])
    out = [f"{text}: tree reference differs"] if not np.array_equal(got, want) else []
    py = text.replace("true", "True").replace("false", "False")
    want_py = np.array([bool(eval(py, {"abs": abs}, r)) for r in T_FULL.to_dict("records")])  # test oracle only
    if not np.array_equal(parse_expression(text).evaluate(T_FULL), want_py):
        out.append(f"{text}: Python's evaluation differs")
    return out


@settings(max_examples=150)
@given(_bool())
def test_random_expressions_match_both_references(tree: tuple) -> None:
    assert mismatches(tree) == []


def test_a_wrong_precedence_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check fails for a parser where 'or' binds tighter than 'and' (the mutant)."""
    trees = [("or", ("bcol", "p"), ("and", ("bcol", "q"), ("lit", False))),
             ("and", ("or", ("bcol", "p"), ("bcol", "q")), ("lit", False))]
    assert all(mismatches(t) == [] for t in trees)
    P = expressions._Parser
    monkeypatch.setattr(P, "or_", lambda self: self._chain("and", self.and_))
    monkeypatch.setattr(P, "and_", lambda self: self._chain("or", self.not_))
    assert any(mismatches(t) for t in trees)


def test_missing_values_compare_false() -> None:
    df = pd.DataFrame({"x": [1.0, np.nan, 3.0], "ok": pd.array([True, None, False], dtype=object),
                       "f": ["A", None, "B"]})
    ev = lambda e: parse_expression(e).evaluate(df).tolist()  # noqa: E731
    assert ev("x != 1") == [False, False, True]
    assert ev("not x > 2") == [True, True, False]
    assert ev("ok") == [True, False, False] and ev("ok == false") == [False, False, True]
    assert ev("f == 'B' or x < 2") == [True, False, True]
    assert ev("abs(x - 2) <= 1 and 0 < x < 4") == [True, False, True]


@pytest.mark.parametrize("text, message", [
    ("a <= 1)", "filter: unexpected ')' at column 7 in 'a <= 1)'"),
    ("a <", "filter: unexpected end of expression (expected a value) at column 4 in 'a <'"),
    ("(a < 1", "filter: unexpected end of expression (expected ')') at column 7 in '(a < 1'"),
    ("a = 1", "filter: unexpected '='; compare with == at column 3 in 'a = 1'"),
    ("'abc", "filter: unexpected \"'\"; strings need a closing quote at column 1 in \"'abc\""),
    ("", "filter: empty expression at column 1 in ''"),
    ("a and and b", "filter: unexpected 'and' (expected a value) at column 7 in 'a and and b'"),
])
def test_parse_errors_name_the_column(text: str, message: str) -> None:
    with pytest.raises(InputError) as e:
        parse_expression(text)
    assert str(e.value) == message


@pytest.mark.parametrize("text", ["__import__('os').system('true')", "a.__class__", "open('x')", "eval('1')",
                                  "a[0]", "lambda: 1", "a; b", "a if p else b", "a ** 2", "[1]", "{}", "a @ b",
                                  "p and __builtins__", "abs.__call__(1)", "'x' 'y'", "a\\\n"])
def test_injection_attempts_are_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("eval / exec / compile called")

    for name in ("eval", "exec", "compile", "__import__"):
        monkeypatch.setattr(builtins, name, forbidden)
    with pytest.raises(InputError):
        parse_expression(text).check({"a": NUM, "b": NUM, "p": BOOL})


@pytest.mark.parametrize("text, columns, message", [
    ("e_hull <= 0.1", {"density": NUM}, "unknown column 'e_hull'"),
    ("density", {"density": NUM}, "must be true/false"),
    ("valid and density", {"valid": BOOL, "density": NUM},
     "'and' needs true/false values, got a number value at column 11"),
    ("formula < 2", {"formula": STR}, "cannot compare a string with a number by '<'"),
    ("-valid > 0", {"valid": BOOL}, "'unary -' needs numbers"),
])
def test_static_type_checks(text: str, columns: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_expression(text).check(columns)


def test_nullable_and_extension_dtypes() -> None:
    """pandas' nullable dtypes (what a parquet table may come back as): pd.NA is a missing value."""
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "ok": pd.array([True, None, False], dtype="boolean"),
                       "f": pd.array(["A", None, "B"], dtype="string"), "x": [0.5, 1.5, np.nan]})
    ev = lambda e: parse_expression(e).evaluate(df).tolist()  # noqa: E731
    assert ev("n >= 1") == [True, False, True] and ev("n != 1") == [False, False, True]
    assert ev("ok") == [True, False, False] and ev("not ok") == [False, True, True]
    assert ev("f == 'A' or f == 'B'") == [True, False, True] and ev("f != 'A'") == [False, False, True]
    assert ev("n + x > 1") == [True, False, False]
    assert expressions.column_types(df) == {"n": NUM, "ok": BOOL, "f": STR, "x": NUM}


def test_empty_and_all_missing_columns() -> None:
    """An empty table (a filter that kept nothing) and a column with no values evaluate to false, not an error."""
    empty = pd.DataFrame({"valid": pd.Series([], dtype=object), "e": pd.Series([], dtype=object)})
    assert parse_expression("valid and e < 1").evaluate(empty).tolist() == []
    gaps = pd.DataFrame({"valid": [True, False], "e": [None, None]})
    assert parse_expression("valid and e < 1").evaluate(gaps).tolist() == [False, False]
    assert expressions.column_types(gaps) == {"valid": BOOL, "e": expressions.ANY}


def test_evaluate_checks_against_the_table() -> None:
    df = pd.DataFrame({"density": [1.0, 2.0], "formula": ["A", "B"]})
    with pytest.raises(InputError, match="unknown column 'x'"):
        parse_expression("x > 1").evaluate(df)
    with pytest.raises(InputError, match="cannot compare"):
        parse_expression("formula > 1").evaluate(df)
    assert parse_expression("formula == \"B\" and density / 2 == 1").evaluate(df).tolist() == [False, True]
