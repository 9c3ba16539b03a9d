"""Residues and amino acids as a user writes them in design conditions (issue 24, item 3): ``"A5=W,12=DE"`` or
``{"A5": "W"}``. A key is ``<chain><number>`` (``A5``: a residue of an input file, by author number) or a bare
``<number>`` (``12``: a position of the designed chain, from 1); the value is one-letter amino-acid codes of the 20.
Every failure is an :class:`~structures.errors.InputError` that names the field (``name``) and how to fix it. What a
key means (which residue of which sample) is decided by :class:`pipeline.proteins.conditions.ProteinConditions`.
"""

from __future__ import annotations

import re
from typing import Any

from structures.errors import InputError
from structures.proteins.residue_constants import RESTYPES

__all__ = ["Key", "assignments", "key_text", "letters"]

_KEY = re.compile(r"^([A-Z]?)([0-9]+)$")
Key = tuple[str, int]  # (chain letter or "", number)


def key_text(key: Key) -> str:
    """``("A", 5)`` -> ``"A5"``; ``("", 12)`` -> ``"12"``."""
    return f"{key[0]}{key[1]}"


def letters(name: str, text: Any, where: str) -> tuple[str, ...]:
    """Amino-acid letters of ``text`` ("DE", "D,E" or a sequence of letters), each one of the 20."""
    items = list(text) if isinstance(text, (list, tuple, set, frozenset)) else None
    if items is None and not isinstance(text, str):
        raise InputError(f"{name}: {where} must be amino-acid letters such as 'C' or 'D,E', got {text!r}")
    letters = [x for x in (items if items is not None else re.split(r"[,\s]*", text)) if x != ""]
    letters = [str(x).strip() for x in letters]
    bad = [x for x in letters if x not in RESTYPES or len(x) != 1]
    if bad or not letters:
        what = f"{bad[0]!r} is not one of the 20 amino acids" if bad else "no amino acid given"
        raise InputError(f"{name}: {where}: {what}; use upper-case one-letter codes from {RESTYPES}")
    return tuple(sorted(set(letters), key=RESTYPES.index))


def assignments(name: str, value: Any) -> dict[Key, tuple[str, ...]]:
    """``"A5=W,12=DE"`` or ``{"A5": "W"}`` -> {key: letters}; keys ``<chain><number>`` or ``<number>``."""
    if isinstance(value, str):
        pairs = []
        for part in (p.strip() for p in value.split(",")):
            if part.count("=") != 1:
                raise InputError(f"{name}: {part!r} is not <residue>=<amino acids>; write e.g. 'A5=W,A9=H' "
                                 "(motif / refined residues) or '12=W' (designed positions)")
            pairs.append(tuple(s.strip() for s in part.split("=")))
    elif isinstance(value, dict):
        pairs = [(key_text(k) if isinstance(k, tuple) else str(k).strip(), v) for k, v in value.items()]
    else:
        raise InputError(f"{name} must be text such as 'A5=W,A9=H' or a dict {{'A5': 'W'}}, got {value!r}")
    out: dict[Key, tuple[str, ...]] = {}
    for k, v in pairs:
        m = _KEY.match(k)
        if m is None or int(m.group(2)) < 1 and not m.group(1):
            raise InputError(f"{name}: residue {k!r} is not <chain><number> (A5, a residue of the input file) or "
                             "a position >= 1 of the designed chain (12)")
        key = (m.group(1), int(m.group(2)))
        if key in out:
            raise InputError(f"{name}: residue {k} is given twice; give each residue once")
        out[key] = letters(name, v, f"residue {k}")
    return out
