"""Per-chain outcome of an all-atom relaxation, the run's summary and the result a caller gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.common.records import JsonRecord

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class ProteinRelaxStatus(str, Enum):
    RELAXED = "relaxed"  # no violation left (pipeline.proteins.relax.violations)
    VIOLATIONS = "violations"  # violations remain after max_outer_iterations (the relaxed model is kept)
    FAILED = "failed"  # see the reason; no model


#: the table columns of a result, in order (besides id and index)
COLUMNS = ("status", "reason", "length", "n_atoms", "n_segments", "energy_before_per_residue",
           "energy_after_per_residue", "clashes_before", "clashes_after", "bond_violations_before",
           "bond_violations_after", "bb_clashes_before", "bb_clashes_after", "backbone_rmsd", "outer_iterations",
           "n_unrestrained")

INT_COLUMNS = ("length", "n_atoms", "n_segments", "clashes_before", "clashes_after", "bond_violations_before",
               "bond_violations_after", "bb_clashes_before", "bb_clashes_after", "outer_iterations", "n_unrestrained")


@dataclass
class ProteinRelaxResult:
    """One chain's relaxation (:mod:`pipeline.proteins.relax.amber`). Energies: Amber99SB, restraints excluded,
    kcal/mol per residue, of the built model (before) and of the relaxed one (after); ``clashes_*`` and
    ``bond_violations_*``: heavy-atom counts of :mod:`~pipeline.proteins.relax.violations` on the built and
    relaxed models; ``bb_clashes_*``: the scorer's backbone clashes of the input and of the relaxed backbone;
    ``backbone_rmsd``: N, CA, C of the relaxed model to the input, Angstrom, no superposition;
    ``n_unrestrained``: residues whose restraints were dropped for violating; ``pdb``: the all-atom model."""

    status: ProteinRelaxStatus
    reason: str = ""
    length: int = 0
    n_atoms: int = 0
    n_segments: int = 0
    energy_before: float = float("nan")
    energy_after: float = float("nan")
    clashes_before: int | None = None
    clashes_after: int | None = None
    bond_violations_before: int | None = None
    bond_violations_after: int | None = None
    bb_clashes_before: int | None = None
    bb_clashes_after: int | None = None
    backbone_rmsd: float = float("nan")
    outer_iterations: int = 0
    n_unrestrained: int = 0
    pdb: str | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        """The table row (module :data:`COLUMNS`)."""
        return {"status": self.status.value, "reason": self.reason, "length": self.length, "n_atoms": self.n_atoms,
                "n_segments": self.n_segments, "energy_before_per_residue": self.energy_before,
                "energy_after_per_residue": self.energy_after, "clashes_before": self.clashes_before,
                "clashes_after": self.clashes_after, "bond_violations_before": self.bond_violations_before,
                "bond_violations_after": self.bond_violations_after, "bb_clashes_before": self.bb_clashes_before,
                "bb_clashes_after": self.bb_clashes_after, "backbone_rmsd": self.backbone_rmsd,
                "outer_iterations": self.outer_iterations, "n_unrestrained": self.n_unrestrained}


@dataclass
class ProteinRelaxSummary(JsonRecord):
    """Counts per status, the validation numbers over the chains that did not fail, the settings and the source.

    ``*_clashes_*``: sums over those chains; ``median_energy_*``: medians of the per-residue energies (kcal/mol;
    a built model with overlapping side chains can have an astronomic energy, so medians, not means)."""

    n: int
    relaxed: int
    violations: int
    failed: int
    failure_reasons: dict[str, int]
    mean_backbone_rmsd: float
    max_backbone_rmsd: float
    median_energy_before_per_residue: float
    median_energy_after_per_residue: float
    clashes_before: int
    clashes_after: int
    bb_clashes_before: int
    bb_clashes_after: int
    mean_outer_iterations: float
    n_bad_input: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    method: str = ""
    source: str = ""


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fields of :class:`ProteinRelaxSummary` computed from table rows (``failure_reasons`` by the reason's
    text before its first colon)."""
    ok = [r for r in rows if r["status"] != ProteinRelaxStatus.FAILED.value]
    reasons: dict[str, int] = {}
    for r in rows:
        if r["status"] == ProteinRelaxStatus.FAILED.value:
            key = str(r["reason"]).split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1

    def values(key: str) -> np.ndarray:
        return np.array([float(r[key]) for r in ok], float)

    def stat(fn: Any, key: str) -> float:
        v = values(key)
        return float(fn(v)) if len(v) else float("nan")

    return {
        "n": len(rows), "relaxed": sum(r["status"] == ProteinRelaxStatus.RELAXED.value for r in rows),
        "violations": sum(r["status"] == ProteinRelaxStatus.VIOLATIONS.value for r in rows),
        "failed": len(rows) - len(ok), "failure_reasons": reasons,
        "mean_backbone_rmsd": stat(np.mean, "backbone_rmsd"), "max_backbone_rmsd": stat(np.max, "backbone_rmsd"),
        "median_energy_before_per_residue": stat(np.median, "energy_before_per_residue"),
        "median_energy_after_per_residue": stat(np.median, "energy_after_per_residue"),
        **{k: int(values(k).sum()) for k in ("clashes_before", "clashes_after", "bb_clashes_before",
                                              "bb_clashes_after")},
        "mean_outer_iterations": stat(np.mean, "outer_iterations"),
    }


@dataclass
class RelaxedProteins:
    """What ``relax`` returns: one ``table`` row per input, in input order (``id`` the caller's id), the all-atom
    PDB text of each relaxed chain (None for a failed one), the summary and the run folder (None: in memory)."""

    ids: list[str]
    table: "pd.DataFrame"
    pdbs: list[str | None]
    summary: ProteinRelaxSummary
    out_dir: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)
