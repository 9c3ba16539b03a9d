"""Argument checks for configs and entry points: each raises :class:`~structures.errors.InputError` naming the
argument (``CrystalGenerateConfig.steps``, ``generate(model=...)``), what it got and what it accepts.

Configs call these once, in ``__post_init__``; entry points call them on their own arguments. Choices accept
the command line's spellings too: ``"inverse-folding"`` and ``"inverse_folding"`` are the same choice.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from structures.errors import InputError


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:80]}..." if len(text) > 80 else text


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (bools and floats refused) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be an integer, got {_got(value)} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]" if minimum is not None \
            else f"<= {maximum}"
        raise InputError(f"{name} must be an integer {bounds}, got {value}")
    return value


def check_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """``value`` as a finite float within the bounds (``strict_minimum``: ``> minimum``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {_got(value)} ({type(value).__name__})")
    value = float(value)
    low_bad = minimum is not None and (value <= minimum if strict_minimum else value < minimum)
    if not math.isfinite(value) or low_bad or (maximum is not None and value > maximum):
        low = "" if minimum is None else (f"> {minimum}" if strict_minimum else f">= {minimum}")
        high = "" if maximum is None else f"<= {maximum}"
        raise InputError(f"{name} must be a finite number {' and '.join(x for x in (low, high) if x)}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {_got(value)} ({type(value).__name__})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices``, compared with ``-`` and ``_`` treated alike; returns the spelling in ``choices``."""
    choices = list(choices)
    if isinstance(value, str):
        key = value.strip().replace("-", "_").lower()
        for choice in choices:
            if choice.replace("-", "_").lower() == key:
                return choice
    raise InputError(f"{name} must be one of {', '.join(choices)}, got {_got(value)}")


def check_int_list(name: str, value: Any, minimum: int | None = None) -> tuple[int, ...]:
    """A non-empty sequence of ints (a single int is a list of one)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise InputError(f"{name} must be a non-empty list of integers, got {_got(value)}")
    return tuple(check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))


def check_path(name: str, value: Any, must_exist: bool = False) -> Path:
    """A file-system path (``str`` or ``os.PathLike``), optionally one that exists."""
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{name} must be a path (str or pathlib.Path), got {_got(value)} ({type(value).__name__})")
    path = Path(value).expanduser()
    if must_exist and not path.exists():
        raise InputError(f"{name}: {path} does not exist; give an existing file or folder")
    return path


def check_instance(name: str, value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it is one of ``kinds``; ``what`` says in words what is accepted."""
    if not isinstance(value, kinds):
        raise InputError(f"{name} must be {what}, got {_got(value)} ({type(value).__name__})")
    return value
