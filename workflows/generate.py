"""Python entry points for crystal generation (the ``genmatch generate crystals`` stage).

    from workflows.generate import generate_crystals
    run = generate_crystals(200, model="perov_5", out_dir="gen")      # CIFs + manifest, resumable
    run.structures   # list[pymatgen Structure] (decoded samples, in id order)
    run.failures     # list[(index, DecodeFailure)]: samples whose tokens are not a crystal

With ``out_dir=None`` nothing is written and the samples stay in memory.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from pipeline.crystals.flow import CrystalModel, load_crystal_model
from pipeline.crystals.generate import GenerationSummary, SamplingConfig, sample_crystals
from pipeline.crystals.generate import generate_crystals as _generate_run

__all__ = ["GeneratedCrystals", "SamplingConfig", "generate_crystals", "load_crystal_model"]


@dataclass
class GeneratedCrystals:
    """Decoded samples, the failures (index, reason) and the run summary (counts by failure reason)."""

    structures: list[Any]  # pymatgen Structures, in sample order (failures left out, listed below)
    failures: list[tuple[int, Any]]  # (sample index, structures.crystals.tokens.DecodeFailure)
    summary: GenerationSummary
    out_dir: Path | None = None
    ids: list[str] = field(default_factory=list)  # ids of ``structures`` (gen_000123)


def generate_crystals(n: int = 200, model: str | os.PathLike | CrystalModel = "perov_5", *,
                      out_dir: str | os.PathLike | None = None, num_atoms: Sequence[int] | int | None = None,
                      steps: int = 250, temperature: float = 0.7, corrector: float = 0.0,
                      scheduler: str | None = None, seed: int = 0, batch_size: int = 256,
                      restart: bool = False, progress: bool = True) -> GeneratedCrystals:
    """Sample ``n`` crystals from a model (an embedded default ``perov_5`` / ``carbon_24`` or a file).

    ``num_atoms``: one count for all, a list of ``n`` counts, or None to draw them from the training
    distribution. ``scheduler`` None uses the model's own (``cubic`` or ``kinetic_optimal``).
    """
    config = SamplingConfig(steps=steps, temperature=temperature, corrector=corrector, scheduler=scheduler)
    if not isinstance(model, CrystalModel):
        model = load_crystal_model(model)
    if out_dir is None:
        samples = sample_crystals(model, n, num_atoms, config, seed=seed, batch_size=batch_size, progress=progress)
        ok = [(i, s) for i, s in enumerate(samples) if s]
        failures = [(i, s) for i, s in enumerate(samples) if not s]
        reasons = Counter(f.reason.value for _, f in failures)
        summary = GenerationSummary(n=len(samples), decoded=len(ok), decode_failed=len(failures),
                                    failures_by_reason=dict(sorted(reasons.items())), not_writable=0,
                                    decode_rate=len(ok) / max(1, len(samples)))
        return GeneratedCrystals([s for _, s in ok], failures, summary, None, [f"gen_{i:06d}" for i, _ in ok])
    run = _generate_run(model, n, out_dir, num_atoms=num_atoms, config=config, seed=seed, batch_size=batch_size,
                        restart=restart, progress=progress, keep_structures=True)
    ok = [(r["id"], s) for r, s in zip(run.rows, run.structures) if s]
    failures = [(r["index"], s) for r, s in zip(run.rows, run.structures) if not s]
    return GeneratedCrystals([s for _, s in ok], failures, run.summary, run.out_dir, [i for i, _ in ok])
