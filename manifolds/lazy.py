"""Lazy package attributes (PEP 562): a package names what it exports and the module that defines each name; the
module is imported when the name is first used. This keeps ``genmatch --help`` and the torch-free ``names``
modules free of torch while ``from package import Name`` keeps working.

    __getattr__, __dir__ = lazy_exports(__name__, {"sample": "manifolds.discrete.sampler", ...})
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``where`` maps each public name to its module. A name
    loaded once is stored in the package, so the lookup happens once per name."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
