"""Deduplicate the rows of a score table by their structures: greedy, in table order, so the first row of each
group (the best after a rank stage) is kept.

Row i is dropped when it matches a kept row j < i: crystals by pymatgen's ``StructureMatcher`` (Ong et al. 2013;
``ltol`` fractional length, ``stol`` site and ``angle_tol`` degree tolerances), proteins when the TM-score of their
CA traces (TM-align, Zhang & Skolnick 2005; the mean of both normalisations,
:func:`pipeline.proteins.score.tm.pair_tm`) is at least ``tm_threshold``. A row whose structure file is missing (an
unusable item) cannot match and is kept. Cost: O(N K) comparisons for N rows and K kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from workflows.design.settings import DeduplicateSettings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["deduplicate", "keep_first_of_groups"]


def keep_first_of_groups(items: list[Any], same: Callable[[Any, Any], bool]) -> np.ndarray:
    """Mask [N]: item i is kept unless ``same(kept_j, item_i)`` for a kept j < i; None items are always kept."""
    keep = np.ones(len(items), dtype=bool)
    kept: list[Any] = []
    for i, x in enumerate(items):
        if x is None:
            continue
        if any(same(k, x) for k in kept):
            keep[i] = False
        else:
            kept.append(x)
    return keep


def _crystals(files: list[Path | None], s: DeduplicateSettings) -> np.ndarray:
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    matcher = StructureMatcher(ltol=s.ltol, stol=s.stol, angle_tol=s.angle_tol)
    items = [Structure.from_file(str(f)) if f is not None else None for f in files]
    same = lambda a, b: (a.composition.reduced_composition == b.composition.reduced_composition  # noqa: E731
                         and bool(matcher.fit(a, b)))  # a cheap test first: fit() only within a composition
    return keep_first_of_groups(items, same)


def _proteins(files: list[Path | None], s: DeduplicateSettings) -> np.ndarray:
    from pipeline.proteins.score.score import trace_of
    from pipeline.proteins.score.tm import pair_tm
    from structures.proteins.io import read_chain

    items = [trace_of(read_chain(f)) if f is not None else None for f in files]
    return keep_first_of_groups(items, lambda a, b: pair_tm(a, b) >= s.tm_threshold)


def deduplicate(table: "pd.DataFrame", structure_file: Callable[[str], Path | None], material: str,
                settings: DeduplicateSettings) -> "pd.DataFrame":
    """The rows of ``table`` that duplicate no earlier kept row (module docstring); ``structure_file(id)``: the
    row's structure file, or None."""
    files = [structure_file(str(i)) for i in table["id"]]
    keep = (_crystals if material == "crystals" else _proteins)(files, settings)
    return table[keep].reset_index(drop=True)
