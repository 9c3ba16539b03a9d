"""Line numbers of the keys of a TOML file (``tomllib`` gives values, never positions).

:func:`key_lines` scans the text once and maps every table header and every ``key = value`` line to its 1-based
line, under a path such as ``("stage", 2, "conditions", "formula")``: the array of tables ``[[stage]]`` is indexed
in order (0-based, as ``tomllib`` returns the list), dotted keys and ``[stage.conditions]`` headers resolve to the
current element of an array of tables. Multi-line strings and arrays are skipped, so a line inside them is never
taken for a key. :func:`line_of` finds a path, or its nearest enclosing key or table (a key of an inline table
reports the line of the table's key). The format: TOML v1.0.0 (toml.io), keys bare or quoted.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["Path", "format_path", "key_lines", "line_of"]

Path = tuple[str | int, ...]
_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]")
_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=(.*)$")


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(_KEY, dotted)]


def _open_depth(value: str, depth: int, in_string: str | None) -> tuple[int, str | None]:
    """Bracket depth and open multi-line string after scanning ``value`` (comments and strings skipped)."""
    i, n = 0, len(value)
    while i < n:
        if in_string is not None:
            end = value.find(in_string, i)
            if end < 0:
                return depth, in_string
            i, in_string = end + len(in_string), None
            continue
        ch = value[i]
        if ch == "#":
            break
        if value.startswith('"""', i) or value.startswith("'''", i):
            in_string, i = value[i:i + 3], i + 3
        elif ch in "\"'":
            end = value.find(ch, i + 1)
            i = n if end < 0 else end + 1
        else:
            depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
            i += 1
    return depth, in_string


def key_lines(text: str) -> dict[Path, int]:
    """Every header and key of the TOML ``text`` -> its 1-based line (module docstring)."""
    lines: dict[Path, int] = {}
    counts: dict[Path, int] = {}  # array-of-tables path -> elements so far
    table: Path = ()
    depth, in_string = 0, None

    def resolve(parts: Sequence[str], last_is_array: bool = False) -> Path:
        out: list[str | int] = []
        for k, p in enumerate(parts):
            out.append(p)
            if tuple(out) in counts and not (last_is_array and k == len(parts) - 1):
                out.append(counts[tuple(out)] - 1)
        return tuple(out)

    for number, line in enumerate(text.splitlines(), start=1):
        if depth > 0 or in_string is not None:
            depth, in_string = _open_depth(line, depth, in_string)
            continue
        if m := _ARRAY_HEADER.match(line):
            base = resolve(_parts(m.group(1)), last_is_array=True)
            counts[base] = counts.get(base, 0) + 1
            table = base + (counts[base] - 1,)
            lines.setdefault(table, number)
        elif m := _HEADER.match(line):
            table = resolve(_parts(m.group(1)))
            lines.setdefault(table, number)
        elif m := _ASSIGN.match(line):
            path = table + tuple(_parts(m.group(1)))
            lines.setdefault(path, number)
            depth, in_string = _open_depth(m.group(2), 0, None)
    return lines


def line_of(lines: dict[Path, int], path: Path) -> int:
    """The line of ``path``, else of its nearest enclosing key or table; 1 when none is known."""
    for k in range(len(path), 0, -1):
        if path[:k] in lines:
            return lines[path[:k]]
    return 1


def format_path(path: Path) -> str:
    """``("stage", 2, "conditions", "formula")`` -> ``stage[2].conditions.formula``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out
