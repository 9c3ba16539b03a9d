"""Safe filter expressions over a score table: a tokenizer and a recursive-descent parser, never ``eval``.

The language (Python's precedence, lowest first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*     # chained as in Python: a < b < c
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | STRING | "true" | "false" | COLUMN | "abs" "(" expr ")" | "(" expr ")"

A column is a bare name of the table (``e_hull``); a string is quoted with ' or " (no escapes). Nothing else
exists: no attributes, no subscripts, no calls but ``abs``, so ``__import__('os')`` and ``x.__class__`` are refused
when parsed. Evaluation is vectorised over a pandas DataFrame of N rows: every node gives an array [N] (or a
scalar), the whole expression a boolean mask [N]. Missing values (NaN / None) compare false, including ``!=``
(three-valued logic collapsed to false at each comparison); ``not`` then negates that false, as SQL's
``IS NOT TRUE`` would. Errors are :class:`~structures.errors.InputError` naming the 1-based column in the
expression: ``filter: unexpected ')' at column 8 in 'a <= 1)'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["ANY", "BOOL", "NUM", "STR", "Expression", "column_types", "parse_expression"]

BOOL, NUM, STR = "bool", "number", "string"  # the value types of a column or a node
ANY = "any"  # a column whose type cannot be told (no values): accepted wherever a type is needed
_TOKEN = re.compile(r"""\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<str>'[^']*'|"[^"]*")|"""
                    r"""(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|<|>|\(|\)|\+|-|\*|/))""")
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")
_KEYWORDS = {"and", "or", "not", "true", "false", "abs"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | str | name | op | end
    text: str
    col: int  # 1-based column of its first character


@dataclass(frozen=True)
class Node:
    """A node of the parsed tree: ``op`` is 'num', 'str', 'bool', 'col', 'neg', 'abs', 'not', 'and', 'or', '+',
    '-', '*', '/' or 'cmp' (``value`` then holds the operators of the chain); ``args`` its operands."""

    op: str
    col: int
    value: Any = None
    args: tuple["Node", ...] = ()


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.toks = self._tokenize()
        self.i = 0

    def fail(self, message: str, col: int) -> InputError:
        return InputError(f"{self.what}: {message} at column {col} in {self.text!r}")

    def _tokenize(self) -> list[_Tok]:
        toks, pos, n = [], 0, len(self.text)
        while pos < n:
            if self.text[pos:].strip() == "":
                break
            m = _TOKEN.match(self.text, pos)
            if m is None or m.lastgroup is None:
                start = len(self.text) - len(self.text[pos:].lstrip())
                ch = self.text[start]
                hint = ("; strings need a closing quote" if ch in "'\"" else "; compare with ==" if ch == "=" else "")
                raise self.fail(f"unexpected {ch!r}{hint}", start + 1)
            toks.append(_Tok(m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup) + 1))
            pos = m.end()
        toks.append(_Tok("end", "", n + 1))
        return toks

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> _Tok | None:
        tok = self.peek()
        if tok.kind in ("op", "name") and tok.text == text:
            return self.take()
        return None

    def unexpected(self, tok: _Tok, wanted: str = "") -> InputError:
        what = "end of expression" if tok.kind == "end" else repr(tok.text)
        return self.fail(f"unexpected {what}" + (f" (expected {wanted})" if wanted else ""), tok.col)

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise self.fail("empty expression", 1)
        node = self.or_()
        if self.peek().kind != "end":
            raise self.unexpected(self.peek())
        return node

    def _chain(self, op: str, sub: Any) -> Node:
        node = sub()
        while tok := self.accept(op):
            node = Node(op, tok.col, None, (node, sub()))
        return node

    def or_(self) -> Node:
        return self._chain("or", self.and_)

    def and_(self) -> Node:
        return self._chain("and", self.not_)

    def not_(self) -> Node:
        if tok := self.accept("not"):
            return Node("not", tok.col, None, (self.not_(),))
        return self.compare()

    def compare(self) -> Node:
        first = self.sum_()
        ops, args = [], [first]
        while self.peek().kind == "op" and self.peek().text in _COMPARE:
            ops.append(self.take().text)
            args.append(self.sum_())
        return Node("cmp", first.col, tuple(ops), tuple(args)) if ops else first

    def sum_(self) -> Node:
        node = self.product()
        while self.peek().kind == "op" and self.peek().text in "+-":
            tok = self.take()
            node = Node(tok.text, tok.col, None, (node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            tok = self.take()
            node = Node(tok.text, tok.col, None, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if tok := self.accept("-"):
            return Node("neg", tok.col, None, (self.unary(),))
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Node("num", tok.col, float(tok.text))
        if tok.kind == "str":
            return Node("str", tok.col, tok.text[1:-1])
        if tok.kind == "op" and tok.text == "(":
            node = self.or_()
            if not self.accept(")"):
                raise self.unexpected(self.peek(), "')'")
            return node
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Node("bool", tok.col, tok.text == "true")
            if tok.text == "abs":
                if not self.accept("("):
                    raise self.unexpected(self.peek(), "'(' after abs")
                node = self.or_()
                if not self.accept(")"):
                    raise self.unexpected(self.peek(), "')'")
                return Node("abs", tok.col, None, (node,))
            if tok.text in _KEYWORDS:
                raise self.unexpected(tok, "a value")
            if self.peek().kind == "op" and self.peek().text == "(":
                raise self.fail(f"{tok.text!r} is not a function (only abs() may be called)", tok.col)
            return Node("col", tok.col, tok.text)
        raise self.unexpected(tok, "a value")


@dataclass(frozen=True)
class Expression:
    """A parsed filter expression: ``text``, its tree ``root`` and the ``columns`` it names (in order)."""

    text: str
    root: Node
    what: str = "filter"

    @property
    def columns(self) -> tuple[str, ...]:
        out: list[str] = []

        def walk(n: Node) -> None:
            if n.op == "col" and n.value not in out:
                out.append(n.value)
            for a in n.args:
                walk(a)

        walk(self.root)
        return tuple(out)

    def _fail(self, message: str, col: int) -> InputError:
        return InputError(f"{self.what}: {message} at column {col} in {self.text!r}")

    def check(self, columns: Mapping[str, str]) -> None:
        """Static checks against the table's ``columns`` (name -> BOOL / NUM / STR): every column exists, the
        whole is true/false, ``and`` / ``or`` / ``not`` take true/false, ``<`` and arithmetic take numbers,
        ``==`` / ``!=`` take two values of one type. InputError at the offending column otherwise."""
        if self._type(self.root, columns) not in (BOOL, ANY):
            raise self._fail("the expression must be true/false (a comparison or a true/false column)", 1)

    def _type(self, n: Node, columns: Mapping[str, str]) -> str:
        if n.op in ("num", "str", "bool"):
            return {"num": NUM, "str": STR, "bool": BOOL}[n.op]
        if n.op == "col":
            if n.value not in columns:
                known = ", ".join(sorted(columns))
                raise self._fail(f"unknown column {n.value!r} (the score table has: {known})", n.col)
            return columns[n.value]
        types = [self._type(a, columns) for a in n.args]
        want = {"not": BOOL, "and": BOOL, "or": BOOL, "neg": NUM, "abs": NUM, "+": NUM, "-": NUM, "*": NUM, "/": NUM}
        if n.op in want:
            for a, t in zip(n.args, types):
                if t not in (want[n.op], ANY):
                    need = "true/false values" if want[n.op] == BOOL else "numbers"
                    raise self._fail(f"{'unary -' if n.op == 'neg' else n.op!r} needs {need}, "
                                     f"got a {t} value", a.col)
            return want[n.op]
        for k, op in enumerate(n.value):  # a comparison chain
            a, b = types[k], types[k + 1]
            if ANY in (a, b):
                continue
            if op in ("==", "!=") and a != b or op not in ("==", "!=") and (a != NUM or b != NUM):
                raise self._fail(f"cannot compare a {a} with a {b} by {op!r}", n.args[k + 1].col)
        return BOOL

    def evaluate(self, table: "pd.DataFrame") -> np.ndarray:
        """The boolean mask [N] of the rows of ``table`` where the expression holds (NaN compares false)."""
        missing = [c for c in self.columns if c not in table.columns]
        if missing:
            n = next(x for x in _nodes(self.root) if x.op == "col" and x.value == missing[0])
            raise self._fail(f"unknown column {missing[0]!r}", n.col)
        self.check(column_types(table))
        out = _eval(self.root, table)
        n_rows = len(table)
        return np.broadcast_to(_truth(out), (n_rows,)).copy()


def column_types(table: "pd.DataFrame") -> dict[str, str]:
    """BOOL / NUM / STR of every column of ``table`` (true/false with gaps is BOOL; numbers with gaps NUM); ANY
    for a column with no value to tell (an empty table, or every value missing), which any use accepts."""
    out = {}
    for name in table.columns:
        a = _column(table, str(name))
        if a.dtype == bool:
            out[str(name)] = BOOL
        elif a.dtype == object and _missing(a).all():
            out[str(name)] = ANY
        elif a.dtype.kind in "iuf":
            out[str(name)] = NUM
        else:
            kinds = {type(x) for x in a if not _is_missing(x)}
            out[str(name)] = BOOL if kinds and kinds <= {bool, np.bool_} else STR
    return out


def _nodes(n: Node) -> list[Node]:
    return [n] + [m for a in n.args for m in _nodes(a)]


def _truth(v: Any) -> np.ndarray:
    """True/false values with missing ones false."""
    a = np.asarray(v, dtype=object) if not isinstance(v, np.ndarray) else v
    if a.dtype == bool:
        return a
    return np.array([x is True or (isinstance(x, (bool, np.bool_)) and bool(x)) for x in np.ravel(a)],
                    dtype=bool).reshape(a.shape)


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and bool(np.isnan(x)))


def _missing(v: Any) -> np.ndarray:
    """Where a value [N] (or a scalar) is missing: NaN or None."""
    a = np.asarray(v)
    if a.dtype.kind == "f":
        return np.isnan(a)
    if a.dtype == object:
        return np.array([_is_missing(x) for x in np.ravel(a)],
                        dtype=bool).reshape(a.shape)
    return np.zeros(a.shape, dtype=bool)


def _number(v: Any) -> np.ndarray:
    a = np.asarray(v)
    return a.astype(float) if a.dtype == object else a


def _column(table: "pd.DataFrame", name: str) -> np.ndarray:
    """Column ``name`` as an array [N]: numpy bool / numbers as they are; numbers with gaps (nullable ones
    included) as floats with NaN; anything else as objects with None for a missing value (NaN, None, pd.NA)."""
    import pandas as pd

    s = table[name]
    if isinstance(s.dtype, np.dtype) and (s.dtype == bool or s.dtype.kind in "iuf"):
        return s.to_numpy()
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=float, na_value=np.nan)
    values = s.astype(object).where(s.notna(), None).to_numpy(dtype=object)
    kinds = {type(x) for x in values if x is not None}
    if kinds and kinds <= {bool, np.bool_}:
        return values  # true/false with gaps: object, missing -> false in _truth / _compare
    if kinds and all(issubclass(k, (int, float, np.integer, np.floating)) and not issubclass(k, (bool, np.bool_))
                     for k in kinds):
        return np.array([np.nan if x is None else x for x in values], dtype=float)
    return values


_CMP = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
        "!=": np.not_equal}


def _compare(op: str, a: Any, b: Any) -> np.ndarray:
    bad = _missing(a) | _missing(b)
    if op in ("==", "!="):
        if np.asarray(a).dtype == object or np.asarray(b).dtype == object:
            aa, bb = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
            eq = np.array([x == y for x, y in zip(np.ravel(aa), np.ravel(bb))], dtype=bool).reshape(aa.shape)
            res = eq if op == "==" else ~eq
        else:
            res = _CMP[op](a, b)
    else:
        with np.errstate(invalid="ignore"):
            res = _CMP[op](_number(a), _number(b))
    return np.asarray(res, dtype=bool) & ~bad


def _eval(n: Node, table: "pd.DataFrame") -> Any:
    if n.op in ("num", "str", "bool"):
        return n.value
    if n.op == "col":
        return _column(table, n.value)
    if n.op == "not":
        return ~_truth(_eval(n.args[0], table))
    if n.op in ("and", "or"):
        a, b = (_truth(_eval(x, table)) for x in n.args)
        return a & b if n.op == "and" else a | b
    if n.op == "cmp":
        vals = [_eval(x, table) for x in n.args]
        out: Any = True
        for k, op in enumerate(n.value):
            out = out & _compare(op, vals[k], vals[k + 1])
        return out
    vals = [_number(_eval(x, table)) for x in n.args]
    with np.errstate(divide="ignore", invalid="ignore"):
        if n.op == "neg":
            return -vals[0]
        if n.op == "abs":
            return np.abs(vals[0])
        a, b = vals
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[n.op](a, b)


def parse_expression(text: Any, what: str = "filter") -> Expression:
    """Parse ``text``; InputError (``what: ... at column C in 'text'``) when it is not an expression."""
    if not isinstance(text, str):
        raise InputError(f"{what}: an expression must be a string, got {type(text).__name__}")
    return Expression(text, _Parser(text, what).parse(), what)
