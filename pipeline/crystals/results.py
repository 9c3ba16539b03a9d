"""What the crystal stages return: the results in memory, the caller's ids kept, and where they were written.

- :class:`GeneratedCrystals` (:func:`pipeline.crystals.generate.generate_crystals`): decoded samples and the
  samples whose tokens are not a crystal;
- :class:`RelaxedCrystals` (:func:`pipeline.crystals.relax.run.relax_crystals`): one structure and one table row
  per input, in input order;
- :class:`ScoredCrystals` (:func:`pipeline.crystals.score.run.score_crystals`): one table row per input, its
  ``id`` the caller's id; the aggregate metrics in ``summary``.

Each can be the input of the next stage (:func:`pipeline.crystals.inputs.as_crystal_input`). ``out_dir`` is the
run folder the results were also written to (None: in memory only); see docs/runs.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common.records import JsonRecord
from pipeline.crystals.relax.result import RelaxSummary
from pipeline.crystals.score.summary import ScoreSummary

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Structure

    from structures.crystals.tokens import DecodeFailure

__all__ = ["GeneratedCrystals", "GenerationSummary", "RelaxedCrystals", "ScoredCrystals"]


@dataclass
class GenerationSummary(JsonRecord):
    """Counts of a generation run: decoded, failed to decode (by reason), decoded but not writable as CIF."""

    n: int
    decoded: int
    decode_failed: int
    failures_by_reason: dict[str, int]
    not_writable: int
    decode_rate: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratedCrystals:
    """Decoded samples (in sample order, failures left out), their ids (``gen_000123``: the sample index), the
    samples whose tokens are not a crystal as ``(index, DecodeFailure)`` and the counts."""

    structures: list["Structure"]
    ids: list[str]
    failures: list[tuple[int, "DecodeFailure"]]
    summary: GenerationSummary
    out_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.structures)


@dataclass
class RelaxedCrystals:
    """One entry per input, in input order: ``structures[i]`` the relaxed (or last good) structure, None where
    there is none; ``table`` one row per input (id, status, reason, energies per atom, steps, cif path when
    written); ``summary`` the counts per status and the settings."""

    structures: list["Structure | None"]
    ids: list[str]
    table: "pd.DataFrame"
    summary: RelaxSummary
    out_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.structures)

    @property
    def chgnet(self) -> str | None:
        """The CHGNet version the structures were relaxed with."""
        return self.summary.settings.get("model")

    def relaxed_mask(self) -> np.ndarray:
        """[N] bool: a relaxed structure exists and the relaxation did not fail."""
        failed = self.table["status"].astype(str).to_numpy() == "failed"
        return np.array([s is not None for s in self.structures], dtype=bool) & ~failed

    def energies_per_atom(self) -> np.ndarray:
        """[N] final CHGNet energy per atom (eV), NaN where :meth:`relaxed_mask` is False."""
        return np.where(self.relaxed_mask(), self.table["e_final_per_atom"].to_numpy(dtype=float), np.nan)


@dataclass
class ScoredCrystals:
    """``table``: one row per input structure (``id``: the caller's id; ``usable`` False with the ``problem`` for
    an input that could not be scored); ``summary``: the aggregate metrics (:class:`ScoreSummary`);
    ``reference``: density and N_el of the reference set (for the plots)."""

    table: "pd.DataFrame"
    summary: ScoreSummary
    out_dir: Path | None = None
    reference: dict[str, np.ndarray] = field(default_factory=dict)
