"""Resumable protein generation runs: batches of mixed lengths through :mod:`pipeline.proteins.sampler`.

:func:`generate_proteins` plans the samples (``lengths`` x ``per_length`` for co-design / structure only; each given
sequence or structure x ``per_length`` for folding / inverse folding), sorts them by length and cuts batches by a
residue budget (B x N_max <= ``residue_budget``, at least one chain per batch). Batch k draws everything from its own
seed (derived from the run seed and k), so the samples do not depend on where a run was interrupted or on the number
of threads. Per sample: ``OUT/pdb/<id>.pdb`` (N, CA, C, O; residue names from the sequence) and, with
``trajectory``, ``OUT/traj/<id>.pdb`` (one model per step). At the end: ``OUT/samples.fasta``, ``OUT/manifest.csv``
and ``OUT/manifest.json`` (length, seed, batch, sequence, settings; wall times in the JSON only, so every other file
is byte-identical between an interrupted and an uninterrupted run). A batch is done when ``OUT/batches/<k>.json``
exists.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.common.records import JsonRecord
from pipeline.common.run import fingerprint, open_run
from pipeline.proteins.sampler import Conditioning, SampleResult, SamplerConfig, sample_proteins
from pipeline.proteins.network import ProteinNetwork
from pipeline.proteins.flow import ProteinState
from structures.atomic import atomic_open
from structures.errors import InputError
from structures.proteins.frames import Frames, backbone_from_frames
from structures.proteins.io import BackboneChain, write_structure
from structures.proteins.residue_constants import indices_to_sequence, sequence_to_indices

__all__ = ["GenerationPlan", "ProteinGenerationConfig", "ProteinGenerationSummary", "ProteinTarget",
           "generate_proteins", "plan_samples"]


@dataclass(frozen=True)
class ProteinGenerationConfig:
    """What to generate: lengths x per_length (or targets x per_length), seed, batching, trajectories."""

    lengths: tuple[int, ...] = (70, 100, 200, 300)
    per_length: int = 100
    seed: int = 0
    residue_budget: int = 2000  # B x N_max per batch
    trajectory: bool = False

    def validate(self) -> None:
        if not self.lengths or min(self.lengths) < 1 or self.per_length < 1 or self.residue_budget < 1:
            raise InputError("lengths, per_length and residue_budget must be positive")


@dataclass(frozen=True)
class ProteinTarget:
    """A given sequence (folding) or structure (inverse folding) to condition on."""

    name: str
    sequence: str  # one-letter
    coords: np.ndarray | None = None  # [L, 4, 3] N, CA, C, O (inverse folding)


@dataclass(frozen=True)
class GenerationPlan:
    """One row per sample, in id order: id, length, target index (or -1)."""

    ids: list[str]
    lengths: list[int]
    targets: list[int]

    def batches(self, budget: int) -> list[list[int]]:
        """Sample indices grouped by length (longest first), cut at ``budget`` padded residues."""
        order = sorted(range(len(self.ids)), key=lambda i: (-self.lengths[i], i))
        out: list[list[int]] = []
        for i in order:
            if out and (len(out[-1]) + 1) * self.lengths[out[-1][0]] <= budget:
                out[-1].append(i)
            else:
                out.append([i])
        return out


def plan_samples(config: ProteinGenerationConfig, targets: Sequence[ProteinTarget] | None) -> GenerationPlan:
    """The samples of a run: ``length_<L>_<i>`` per length, or ``<target>_<i>`` per target."""
    ids, lengths, tix = [], [], []
    if targets:
        for k, tgt in enumerate(targets):
            for i in range(config.per_length):
                ids.append(f"{tgt.name}_{i:04d}")
                lengths.append(len(tgt.sequence))
                tix.append(k)
    else:
        for length in config.lengths:
            for i in range(config.per_length):
                ids.append(f"length_{length}_{i:04d}")
                lengths.append(length)
                tix.append(-1)
    if len(set(ids)) != len(ids):
        raise InputError("sample ids are not unique (two inputs with the same name?); rename the inputs")
    return GenerationPlan(ids, lengths, tix)


@dataclass
class ProteinGenerationSummary(JsonRecord):
    """Counts and timing of a protein generation run."""

    n: int
    mode: str
    batches: int
    wall_s: float
    samples_per_s: float
    settings: dict[str, Any] = field(default_factory=dict)


def batch_seed(seed: int, k: int) -> int:
    """The seed of batch k (independent of batching history and thread counts)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def _conditioning(plan: GenerationPlan, idx: list[int], targets: Sequence[ProteinTarget] | None, mode: str,
                  device: torch.device) -> Conditioning:
    """Padded residue mask, and the given sequences / frames (centred on the CA centroid) of a batch."""
    n = max(plan.lengths[i] for i in idx)
    mask = torch.zeros(len(idx), n, dtype=torch.bool)
    for b, i in enumerate(idx):
        mask[b, : plan.lengths[i]] = True
    cond = Conditioning(mask.to(device))
    if mode == "folding":
        seq = torch.zeros(len(idx), n, dtype=torch.long)
        for b, i in enumerate(idx):
            seq[b, : plan.lengths[i]] = torch.from_numpy(sequence_to_indices(targets[plan.targets[i]].sequence))
        cond.sequence = seq.to(device)
    if mode == "inverse_folding":
        from structures.proteins.frames import frames_from_atoms

        trans, rots = torch.zeros(len(idx), n, 3), torch.eye(3).repeat(len(idx), n, 1, 1)
        for b, i in enumerate(idx):
            x = torch.from_numpy(np.asarray(targets[plan.targets[i]].coords, dtype=np.float64))
            f = frames_from_atoms(x)
            trans[b, : len(x)] = (f.trans - f.trans.mean(0)).float()
            rots[b, : len(x)] = f.rots.float()
        cond.trans, cond.rotmats = trans.to(device), rots.to(device)
    return cond


def _atoms(state: ProteinState, mask: torch.Tensor) -> np.ndarray:
    """Idealised N, CA, C, O ``[..., L, 4, 3]`` (numpy float64) of frames."""
    frames = Frames(state.rotmats.double().cpu(), state.trans.double().cpu())
    return backbone_from_frames(frames, mask=mask.cpu()).numpy()


def _write_batch(out: Path, plan: GenerationPlan, idx: list[int], res: SampleResult, k: int, seed: int,
                 trajectory: bool) -> list[dict[str, Any]]:
    atoms = _atoms(res.state, res.res_mask)  # [B, N, 4, 3]
    rows = []
    for b, i in enumerate(idx):
        length = plan.lengths[i]
        seq = indices_to_sequence(res.state.aatypes[b, :length].cpu().numpy())
        rel = f"pdb/{plan.ids[i]}.pdb"
        write_structure(out / rel, BackboneChain.from_coords(atoms[b, :length], seq, name=plan.ids[i]))
        row = {"id": plan.ids[i], "index": i, "length": length, "batch": k, "seed": seed, "sequence": seq,
               "file": rel, "trajectory": None}
        if trajectory and res.trajectory:
            coords = np.stack([_atoms(s, res.res_mask.cpu())[b, :length] for s in res.trajectory])  # [M, L, 4, 3]
            row["trajectory"] = f"traj/{plan.ids[i]}.pdb"
            write_structure(out / row["trajectory"], BackboneChain.from_coords(coords, seq, name=plan.ids[i]))
        rows.append(row)
    return rows


def _write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def generate_proteins(net: ProteinNetwork, out_dir: str | Path, sampler: SamplerConfig = SamplerConfig(),
                      config: ProteinGenerationConfig = ProteinGenerationConfig(), *,
                      targets: Sequence[ProteinTarget] | None = None, inputs: Sequence[Any] = (),
                      restart: bool = False, progress: bool = True) -> ProteinGenerationSummary:
    """Generate into the run folder ``out_dir`` (module docstring); ``inputs`` are fingerprinted with the targets
    (the checkpoint file, ...). Bad settings raise :class:`InputError` before the folder is touched."""
    try:
        sampler.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config.validate()
    needs = {"folding": "sequences", "inverse_folding": "structures"}.get(sampler.mode)
    if needs and not targets:
        raise InputError(f"mode {sampler.mode} needs input {needs} (--sequence-in / --structure-in)")
    if not needs and targets:
        raise InputError(f"mode {sampler.mode} takes no input sequences or structures")
    plan = plan_samples(config, targets if needs else None)
    batches = plan.batches(config.residue_budget)
    settings = {"sampler": asdict(sampler), "generation": asdict(config), "n": len(plan.ids)}
    tgt_fp = [(t.name, t.sequence, t.coords if t.coords is not None else "") for t in (targets or [])]
    with open_run(out_dir, "generate-proteins", settings, fingerprint([list(inputs), tgt_fp]),
                  restart=restart) as run:
        out = run.path
        done = {k for k in range(len(batches)) if (out / "batches" / f"{k:05d}.json").is_file()}
        bar = tqdm(total=len(plan.ids), initial=sum(len(batches[k]) for k in done), unit="protein",
                   desc="generating", disable=not progress)
        for k, idx in enumerate(batches):
            if k in done:
                continue
            start, seed = time.perf_counter(), batch_seed(config.seed, k)
            rng = torch.Generator(device=net.device).manual_seed(seed)
            cond = _conditioning(plan, idx, targets, sampler.mode, net.device)
            res = sample_proteins(net, cond, sampler, rng, trajectory=config.trajectory)
            rows = _write_batch(out, plan, idx, res, k, seed, config.trajectory)
            _write_json(out / "batches" / f"{k:05d}.json", {"batch": k, "rows": rows,
                                                           "wall_s": time.perf_counter() - start})
            bar.update(len(rows))
        bar.close()
        return _finish(out, plan, len(batches), sampler.mode, settings)


def _finish(out: Path, plan: GenerationPlan, n_batches: int, mode: str,
            settings: dict[str, Any]) -> ProteinGenerationSummary:
    rows, wall = [], 0.0
    for k in range(n_batches):
        rec = json.loads((out / "batches" / f"{k:05d}.json").read_text())
        per = rec["wall_s"] / max(1, len(rec["rows"]))
        rows.extend({**r, "wall_s": per} for r in rec["rows"])
        wall += rec["wall_s"]
    rows.sort(key=lambda r: r["index"])
    summary = ProteinGenerationSummary(n=len(rows), mode=mode, batches=n_batches, wall_s=wall,
                                       samples_per_s=len(rows) / wall if wall > 0 else 0.0, settings=settings)
    _write_json(out / "manifest.json", {"summary": summary.to_dict(), "rows": rows})
    buf = io.StringIO()
    cols = ["id", "index", "length", "batch", "seed", "sequence", "file", "trajectory"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_open(out / "manifest.csv") as f:
        f.write(buf.getvalue())
    with atomic_open(out / "samples.fasta") as f:
        f.write("".join(f">{r['id']} length={r['length']} mode={mode}\n{r['sequence']}\n" for r in rows))
    return summary
