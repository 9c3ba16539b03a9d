"""What protein generation returns (the twin of :mod:`pipeline.crystals.results`): the chains in memory, the
run's summary, and the run folder they were also written to (None: in memory only; docs/runs.md).

- :class:`GeneratedProteins` (:func:`pipeline.proteins.generate.generate_proteins`): backbones with their
  sequences, in id order; it can be the input of inverse folding, relax and score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.common.records import JsonRecord
from structures.proteins.io import BackboneChain

__all__ = ["GeneratedProteins", "ProteinGenerationSummary"]


@dataclass
class ProteinGenerationSummary(JsonRecord):
    """Counts and timing of a protein generation run."""

    n: int
    mode: str
    batches: int
    wall_s: float
    samples_per_s: float
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratedProteins:
    """Generated proteins in id order: backbones (N, CA, C, O) with their sequences, the run's summary, and the run
    folder (None: in memory only). ``trajectories``: one chain of M models per sample (``trajectory=True``)."""

    chains: list[BackboneChain]
    sequences: list[str]
    ids: list[str]
    summary: ProteinGenerationSummary
    out_dir: Path | None = None
    trajectories: list[BackboneChain] | None = None

    def __len__(self) -> int:
        return len(self.ids)
