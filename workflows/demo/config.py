"""What ``make demo`` / ``genmatch demo`` runs: :class:`DemoConfig` (the settings of both chains).

Re-exported by :mod:`workflows.demo`; it lives here so that the crystal and protein halves of the demo
(:mod:`workflows.demo.crystals`, :mod:`workflows.demo.proteins`) can read it without importing the
orchestration module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import math

from structures.errors import InputError

HULLS = {
    "mp-elements": "MP elemental references only: E_hull = formation energy vs the elements, a lower "
                   "bound on the true E_hull (stable rate: an upper bound)",
    "default": "MP elemental references + CHGNet-relaxed Perov-5 val crystals in the samples' chemical systems",
}
GENERATE_BATCH = 50  # crystals per sampler batch: the bar moves and a resumed run loses at most one batch
PROTEIN_ROTATIONS = ("flow", "jump")  # MultiFlow's geodesic flow on SO(3) vs the vMF jump of GM section 9


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs (defaults: what ``make demo`` runs).

    Crystals: n_generate / steps / temperature / seed: the sampler (200, 250, 0.7, 0). relax_max_steps / fmax:
    CHGNet FIRE step limit and force threshold (eV/A). hull: "default" (MP elemental refs +
    CHGNet-relaxed Perov-5 val in the samples' chemical systems) or "mp-elements" (elemental refs
    only: a lower bound on E_hull). reference_limit: score against only the first N Perov-5 test
    crystals (None: all 3,785). n_crystals / n_proteins: sizes of the sanity stage.
    score_unrelaxed: also score the as-generated crystals (no E_hull).

    Proteins (the shipped ``pipeline/models/protein_small.safetensors``, co-design, once per rotation generator
    of :data:`PROTEIN_ROTATIONS`, seed ``seed``): protein_lengths x protein_per_length samples per generator;
    protein_steps: sampler time points (= network calls; None: the checkpoint's setting, 500);
    protein_reference_limit: novelty against only the first N of the 3,000 reference chains (a demo setting:
    each reference costs one TM-align call per sample; None: all).

    workers: fingerprint / protein-scoring processes (None: the CPUs this process may use). threads: torch
    threads for sampling, CHGNet and ProteinMPNN; 1 by default: the graphs are tiny (5-atom cells), and with
    2 threads on 2 busy cores each small op waits for a descheduled thread (measured 8x (sampling) to 11x
    (CHGNet) slower under load). ``workers`` and ``threads`` change speed only, so a resumed run may change them.
    """

    n_generate: int = 200
    steps: int = 250
    temperature: float = 0.7
    seed: int = 0
    relax_max_steps: int = 1500
    fmax: float = 0.1
    hull: str = "default"
    reference_limit: int | None = None
    n_crystals: int = 200
    n_proteins: int = 200
    score_unrelaxed: bool = True
    protein_lengths: tuple[int, ...] = (70, 100)
    protein_per_length: int = 16
    protein_steps: int | None = 25
    protein_reference_limit: int | None = 100
    workers: int | None = None
    threads: int = 1

    def validate(self) -> None:
        if self.n_generate < 1 or self.steps < 1:
            raise InputError(f"n_generate and steps must be >= 1, got {self.n_generate}, {self.steps}")
        if self.hull not in HULLS:
            raise InputError(f"unknown hull {self.hull!r}: choose one of {', '.join(HULLS)}")
        if self.relax_max_steps < 0:
            raise InputError(f"relax_max_steps must be >= 0, got {self.relax_max_steps}")
        if not (math.isfinite(self.temperature) and self.temperature > 0 and math.isfinite(self.fmax) and self.fmax > 0):
            raise InputError("temperature and fmax must be finite positive numbers")
        if not self.protein_lengths or min(self.protein_lengths) < 1 or self.protein_per_length < 1:
            raise InputError(f"protein lengths and samples per length must be >= 1, got {list(self.protein_lengths)} "
                             f"and {self.protein_per_length}")
        if self.protein_steps is not None and self.protein_steps < 1:
            raise InputError(f"protein_steps must be >= 1, got {self.protein_steps}")
        if self.protein_reference_limit is not None and self.protein_reference_limit < 1:
            raise InputError(f"protein_reference_limit must be >= 1, got {self.protein_reference_limit}")

    def settings(self) -> dict[str, Any]:
        """The fields that shape the results (a resumed run must have the same)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("workers", "threads")}
        d["protein_lengths"] = [int(v) for v in self.protein_lengths]
        return d
