"""The protein chain of the demo: co-designed proteins from the shipped model, rotations by flow and by jump,
scored offline.

Per rotation generator ``R`` of :data:`~workflows.demo.config.PROTEIN_ROTATIONS` ("flow": MultiFlow's geodesic
flow on SO(3); "jump": the vMF jump of GM section 9), with the default sampler otherwise (purity sequence
sampler, seed ``DemoConfig.seed``):

- ``OUT/proteins_R/``: ``protein_lengths`` x ``protein_per_length`` proteins from the shipped
  ``pipeline/models/protein_small.safetensors`` (:func:`workflows.proteins.generate`: PDBs, FASTA,
  manifest; resumable per batch);
- ``OUT/proteins_R_scores/``: :func:`workflows.proteins.score` without ESMFold (designability
  "unavailable", the ProteinMPNN proxies instead), DSSP, geometry, diversity (TM-align all-vs-all) and novelty
  against the first ``protein_reference_limit`` chains of the 3,000-chain reference (a demo setting, labelled
  as such); resumable through the score cache;
- ``OUT/proteins_R_<plot>.png``: copies of the scorer's plots in the report folder.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.io import atomic_write
from pipeline.common.records import JsonRecord
from pipeline.proteins.generate import ProteinGenerationSummary
from pipeline.proteins.score.summary import ProteinScoreSummary
from workflows.demo.config import PROTEIN_ROTATIONS, DemoConfig
from workflows.verbs import torch_threads

ROTATION_NOTES = {"flow": "MultiFlow's geodesic flow on SO(3)", "jump": "SO(3) vMF jumps (GM section 9)"}


@dataclass
class DemoProteinRun(JsonRecord):
    """One rotation generator's proteins: where they are, the generation summary and the score summary."""

    rotations: str
    out: str  # generation run folder (pdb/, samples.fasta, manifest)
    scores_out: str  # score run folder (scores.csv/.parquet, summary.json/.txt, tm_matrix.npz, PNGs)
    generation: ProteinGenerationSummary
    scores: ProteinScoreSummary

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoProteinRun":
        d = dict(d)
        if isinstance(d.get("generation"), dict):
            d["generation"] = ProteinGenerationSummary.from_dict(d["generation"])
        if isinstance(d.get("scores"), dict):
            d["scores"] = ProteinScoreSummary.from_dict(d["scores"])
        return super().from_dict(d)


@dataclass
class DemoProteins(JsonRecord):
    """The protein part of ``demo_summary.json``: the model and sampler settings, one :class:`DemoProteinRun`
    per rotation generator (``runs``, keyed by "flow" / "jump"), how novelty was measured (``novelty_note``)
    and the plots copied into the report folder."""

    model: str
    lengths: list[int]
    per_length: int
    steps: int
    seed: int
    reference_limit: int | None
    novelty_note: str
    runs: dict[str, DemoProteinRun] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoProteins":
        d = dict(d)
        d["runs"] = {k: v if isinstance(v, DemoProteinRun) else DemoProteinRun.from_dict(v)
                     for k, v in d.get("runs", {}).items()}
        return super().from_dict(d)


def novelty_note(n_reference: int, limit: int | None) -> str:
    """How novelty was measured, for the printed summary and the JSON."""
    if limit is not None:
        return f"novelty vs the first {n_reference} reference chains (demo setting; the full reference has 3,000)"
    return f"novelty vs all {n_reference} reference chains"


def run_proteins(c: DemoConfig, out: Path, workers: int, wall: dict[str, float], *, progress: bool) -> DemoProteins:
    """Generate and score the demo's proteins (module docstring) under ``out``; adds the stage wall times
    ``proteins_generate`` and ``proteins_score`` (both generators together) to ``wall``."""
    from pipeline.proteins.network.checkpoint import default_protein_checkpoint
    from structures.errors import InputError
    from workflows import proteins

    model = default_protein_checkpoint()
    if model is None:
        raise InputError("no protein model: the shipped pipeline/models/protein_small.safetensors is missing")
    t = time.perf_counter()
    generated: dict[str, ProteinGenerationSummary] = {}
    with torch_threads("demo", c.threads):
        for rot in PROTEIN_ROTATIONS:
            generated[rot] = proteins.generate(model=model, out_dir=out / f"proteins_{rot}",
                                               lengths=c.protein_lengths, per_length=c.protein_per_length,
                                               rotations=rot, steps=c.protein_steps, seed=c.seed,
                                               progress=progress).summary
    wall["proteins_generate"] = time.perf_counter() - t

    t = time.perf_counter()
    config = proteins.ProteinScoreConfig(reference="default", reference_limit=c.protein_reference_limit,
                                         workers=workers, backend="processes")
    runs: dict[str, DemoProteinRun] = {}
    plots: list[str] = []
    with torch_threads("demo", c.threads):
        for rot in PROTEIN_ROTATIONS:
            scores_out = out / f"proteins_{rot}_scores"
            scores = proteins.score(out / f"proteins_{rot}" / "pdb", config, out_dir=scores_out, threads=c.threads,
                                    progress=progress)
            runs[rot] = DemoProteinRun(rot, str(out / f"proteins_{rot}"), str(scores_out), generated[rot],
                                       scores.summary)
            for png in sorted(scores_out.glob("*.png")):
                name = f"proteins_{rot}_{png.name}"
                atomic_write(out / name, lambda tmp, src=png: shutil.copyfile(src, tmp))
                plots.append(name)
    wall["proteins_score"] = time.perf_counter() - t
    first = next(iter(runs.values())).scores
    steps = int(generated[PROTEIN_ROTATIONS[0]].settings.get("sampler", {}).get("steps", c.protein_steps or 0))
    return DemoProteins(model=str(model), lengths=[int(v) for v in c.protein_lengths], per_length=c.protein_per_length,
                        steps=steps, seed=c.seed, reference_limit=c.protein_reference_limit,
                        novelty_note=novelty_note(first.n_reference, c.protein_reference_limit), runs=runs,
                        plots=plots)


def _pct(v: float | None) -> str:
    return f"{100 * v:.1f} %" if v is not None and np.isfinite(v) else "-"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return format(v, fmt) if v is not None and np.isfinite(v) else "-"


def format_proteins(p: DemoProteins) -> list[str]:
    """The protein lines of the printed report: one column per rotation generator."""
    rots = list(p.runs)
    any_run = next(iter(p.runs.values()))
    n = len(p.lengths) * p.per_length
    lines = [f"proteins: {n} per generator ({', '.join(map(str, p.lengths))} residues x {p.per_length}) from the "
             f"shipped model {Path(p.model).name}, co-design, {p.steps} steps, seed {p.seed}; rotations "
             + " vs ".join(f"{r} ({ROTATION_NOTES.get(r, r)})" for r in rots),
             "",
             f"{'metric (proteins)':30s} " + " ".join(f"{r:>10s}" for r in rots)]

    def row(label: str, cell: Any) -> None:
        lines.append(f"{label:30s} " + " ".join(f"{cell(p.runs[r].scores):>10s}" for r in rots))

    row("samples scored", lambda s: f"{s.n_scored}/{s.n_input}")
    row("helix", lambda s: _pct(s.helix))
    row("strand", lambda s: _pct(s.strand))
    row("coil", lambda s: _pct(s.coil))
    row("radius of gyration (A)", lambda s: _num(s.radius_of_gyration_mean, ".1f"))
    row("with clashes", lambda s: _pct(s.with_clashes))
    row("with CA-CA outliers", lambda s: _pct(s.with_ca_ca_outliers))
    row("MPNN log-lik. designs", lambda s: _num(s.mpnn_log_likelihood))
    row("MPNN log-lik. co-designed", lambda s: _num(s.codesign_log_likelihood))
    row("MPNN recovery", lambda s: _pct(s.mpnn_recovery))
    row("clusters / samples", lambda s: f"{s.n_clusters}/{s.diversity_n}" if s.n_clusters is not None else "-")
    row("mean pairwise TM", lambda s: _num(s.mean_pairwise_tm))
    row("novelty (1 - max TM)", lambda s: _num(s.novelty))
    lines.append(f"{p.novelty_note}; designability: {any_run.scores.designability}")
    lines.append("MPNN log-lik.: mean per-residue log p (nats) of ProteinMPNN's designs / of the co-designed "
                 "sequence; recovery: designs vs the co-designed sequence (offline proxies for designability)")
    return lines
