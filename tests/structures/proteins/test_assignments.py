"""Residue keys and amino-acid assignments as users write them (structures.proteins.assignments)."""

from __future__ import annotations

import pytest

from structures.errors import InputError
from structures.proteins.assignments import assignments, key_text, letters


def test_text_and_dicts_give_the_same_assignments() -> None:
    want = {("A", 5): ("W",), ("", 12): ("D", "E")}  # letters in RESTYPES order, deduplicated
    assert assignments("fix", "A5=W, 12=ED") == want
    assert assignments("fix", {"A5": "W", ("", 12): "E,D,E"}) == want
    assert [key_text(k) for k in want] == ["A5", "12"]
    assert letters("forbid", ["C", "M"], "forbid") == ("C", "M")


@pytest.mark.parametrize("value, message", [
    ("A5", "is not <residue>=<amino acids>"),
    ("A5=W,A5=H", "residue A5 is given twice"),
    ("a5=W", "is not <chain><number>"),
    ("0=W", "a position >= 1"),
    ("A5=X", "'X' is not one of the 20 amino acids"),
    ("A5=", "no amino acid given"),
    (5, "must be text such as 'A5=W,A9=H'"),
])
def test_bad_assignments_name_the_field_and_the_fix(value: object, message: str) -> None:
    with pytest.raises(InputError, match="^fix") as exc:
        assignments("fix", value)
    assert message in str(exc.value)
