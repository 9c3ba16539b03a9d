"""Per-structure outcome of a relaxation."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.common.records import JsonRecord

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


class RelaxStatus(str, Enum):
    CONVERGED = "converged"  # max filtered force < fmax
    STEP_LIMIT = "step_limit"  # max_steps FIRE steps without converging (final structure kept)
    FAILED = "failed"  # see RelaxResult.reason; final structure is the last good one (or None)


@dataclass
class RelaxResult:
    """One structure's relaxation. Energies are CHGNet energies per atom (eV/atom)."""

    index: int
    status: RelaxStatus
    structure: "Structure | None"  # relaxed (or last good) structure
    e_initial: float = float("nan")  # eV/atom at the input geometry
    e_final: float = float("nan")  # eV/atom at the returned geometry
    n_steps: int = 0  # FIRE steps taken
    fmax_final: float = float("nan")  # eV/A, max norm of the filtered force (atoms + cell)
    reason: str = ""  # why it failed (empty otherwise)
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"index": self.index, "status": self.status.value, "reason": self.reason,
                "e_initial_per_atom": self.e_initial, "e_final_per_atom": self.e_final,
                "n_steps": self.n_steps, "fmax_final": self.fmax_final,
                "n_atoms": len(self.structure) if self.structure is not None else 0}


@dataclass
class RelaxSummary(JsonRecord):
    """Counts per status of a relaxation run, its settings and where its input came from."""

    n: int
    converged: int
    step_limit: int
    failed: int
    failure_reasons: dict[str, int]
    mean_steps: float  # over the relaxations that did not fail
    mean_energy_drop_per_atom: float  # eV/atom, idem
    n_bad_input: int = 0  # failed before any work: unreadable CIF, non-physical cell, unsupported element
    settings: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    source: str = ""

    @property
    def converged_rate(self) -> float:
        return self.converged / max(1, self.n)


def summarize(results: Sequence[RelaxResult]) -> dict[str, Any]:
    """Counts per status, mean steps and the mean energy drop (eV/atom) of the successful ones."""
    ok = [r for r in results if r.status != RelaxStatus.FAILED]
    drops = np.array([r.e_initial - r.e_final for r in ok], dtype=float)
    reasons: dict[str, int] = {}
    for r in results:
        if r.status == RelaxStatus.FAILED:
            key = r.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "n": len(results),
        "converged": sum(r.status == RelaxStatus.CONVERGED for r in results),
        "step_limit": sum(r.status == RelaxStatus.STEP_LIMIT for r in results),
        "failed": len(results) - len(ok),
        "failure_reasons": reasons,
        "mean_steps": float(np.mean([r.n_steps for r in ok])) if ok else float("nan"),
        "mean_energy_drop_per_atom": float(drops.mean()) if len(drops) else float("nan"),
    }
