"""Protein generation runs: batches of mixed lengths through :mod:`pipeline.proteins.sampler`, in memory or into a
resumable run folder.

:func:`generate_proteins` plans the samples (``lengths`` x ``per_length`` for co-design / structure only; each given
sequence or structure x ``per_length`` for folding / inverse folding), sorts them by length and cuts batches by a
residue budget (B x N_max <= ``residue_budget``, at least one chain per batch). Batch k draws everything from its own
seed (derived from the run seed and k), so the samples do not depend on where a run was interrupted or on the number
of threads. The model file is read once (:func:`~pipeline.proteins.network.checkpoint.load_protein_model`); lengths
outside the range it was trained on give one :class:`UserWarning`.

Without ``out_dir`` the chains stay in memory. With it, per sample: ``OUT/pdb/<id>.pdb`` (N, CA, C, O; residue names
from the sequence) and, with ``trajectory``, ``OUT/traj/<id>.pdb`` (one model per step); at the end
``OUT/samples.fasta``, ``OUT/manifest.csv`` and ``OUT/manifest.json`` (length, seed, batch, sequence, settings; wall
times in the JSON only, so every other file is byte-identical between an interrupted and an uninterrupted run), and
the returned chains are those of the files. A batch is done when ``OUT/batches/<k>.json`` exists. ``conditions``
(:class:`~pipeline.proteins.conditions.ProteinConditions`: motif scaffolding, refinement, fixed / forbidden amino
acids) are recorded in the settings, and each sample's contig draw and motif placement in its manifest row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from manifolds.discrete.names import SCHEDULER_NAMES
from pipeline.common.device import check_device
from pipeline.common.run import fingerprint, open_run
from pipeline.proteins.conditions import ProteinConditions, SampleInputs, plan_inputs
from pipeline.proteins.flow import ProteinFlowConfig, RotationConfig, SequenceConfig
from pipeline.proteins.memory import check_batches_fit
from pipeline.proteins.model_checks import check_motif_input, warn_untrained_lengths
from pipeline.proteins.names import MODE_SPELLINGS, PRECISIONS, ROTATIONS, SEQUENCES
from pipeline.proteins.network import ProteinNetwork
from pipeline.proteins.network.checkpoint import LoadedProteinModel, load_protein_model
from pipeline.proteins.results import GeneratedProteins, ProteinGenerationSummary
from pipeline.proteins.sampler import (GenerationPlan, ProteinTarget, SamplerConfig, backbone_atoms, batch_seed,
                                       plan_samples, sample_proteins)
from structures.atomic import atomic_open
from structures.data import ProteinChain
from structures.errors import InputError
from structures.proteins.checks import checked
from structures.proteins.inputs import as_backbone_chain, check_sequence, read_backbones, read_fasta
from structures.proteins.io import BackboneChain, read_chain, write_structure
from structures.proteins.residue_constants import indices_to_sequence
from structures.validate import check_bool, check_choice, check_float, check_int, check_int_list

__all__ = ["GeneratedProteins", "GenerationPlan", "PreparedGeneration", "ProteinGenerateConfig",
           "ProteinGenerationSummary", "ProteinTarget", "batch_record", "generate_proteins", "plan_samples",
           "prepare_generation", "write_batch"]

DEFAULT_STEPS = 500  # MultiFlow's inference num_timesteps, for a model whose record sets none
DEFAULT_LENGTHS = (70, 100, 200, 300)
_INPUT_KINDS = (str, os.PathLike, list, tuple, dict)


@dataclass(frozen=True)
class ProteinGenerateConfig:
    """What to generate and how (checked once, here; bad values raise :class:`InputError` naming the field).

    ``model``: a shipped model's name (``"protein_small"``), a path (a MultiFlow ``.ckpt`` with its config.yaml
    beside it, or a genmatch ``.safetensors``), a loaded :class:`ProteinNetwork`, or None: ``$GENMATCH_MULTIFLOW_CKPT``,
    else the shipped small model. ``steps``: time points = network calls (None: the model record's setting, else
    500). ``mode``: codesign, structure, folding (alias forward-folding) or inverse_folding (inverse-folding); None:
    folding with ``sequence_in``, inverse folding with ``structure_in``, else codesign. ``sequence_in``: sequences to
    fold (a sequence, a list of them, a dict name -> sequence, or a FASTA path); ``structure_in``: backbones to design
    for (BackboneChains or data set ProteinChains, a list / dict of them, a previous :class:`GeneratedProteins`, or a
    PDB / mmCIF file or folder). ``precision`` "bf16": network calls under bfloat16 autocast. ``max_memory_gb``: the
memory a batch may need (None: what is available now on ``device``); a run whose heaviest batch is estimated to need
more is refused before it starts (:mod:`pipeline.proteins.memory`). ``conditions``: a
:class:`~pipeline.proteins.conditions.ProteinConditions` (or a dict of its fields); with a motif or a refined
chain, ``per_length`` samples are made and their lengths come from the contig draws / the chain.
    """

    model: "str | os.PathLike | ProteinNetwork | None" = None
    lengths: tuple[int, ...] = DEFAULT_LENGTHS
    per_length: int = 100
    rotations: str = "flow"
    jump_weight: float = 0.5
    sequence: str = "purity"
    scheduler: str = "kinetic_optimal"
    steps: int | None = None
    mode: str | None = None
    sequence_in: Any = None
    structure_in: Any = None
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    multiflow_exact: bool = False
    residue_budget: int = 2000  # B x N_max per batch
    trajectory: bool = False
    max_memory_gb: float | None = None  # None: the memory available now (pipeline.proteins.memory)
    conditions: ProteinConditions | None = None
    #: the mode this config runs in: ``mode`` in its canonical spelling, or the one inferred from the inputs
    resolved_mode: str = field(init=False, repr=False, compare=False, default="codesign")

    def __post_init__(self) -> None:
        name = type(self).__name__
        put = object.__setattr__
        if self.model is not None and not (isinstance(self.model, ProteinNetwork) or
                                           isinstance(self.model, (str, os.PathLike)) and str(self.model).strip()):
            raise InputError(f"{name}.model must be a shipped model's name, a path or a ProteinNetwork, got "
                             f"{type(self.model).__name__}")
        put(self, "lengths", check_int_list(f"{name}.lengths", self.lengths, minimum=1))
        put(self, "per_length", check_int(f"{name}.per_length", self.per_length, minimum=1))
        put(self, "rotations", check_choice(f"{name}.rotations", self.rotations, ROTATIONS))
        put(self, "jump_weight", check_float(f"{name}.jump_weight", self.jump_weight, 0.0, 1.0))
        put(self, "sequence", check_choice(f"{name}.sequence", self.sequence, SEQUENCES))
        put(self, "scheduler", check_choice(f"{name}.scheduler", self.scheduler, SCHEDULER_NAMES))
        if self.steps is not None:
            put(self, "steps", check_int(f"{name}.steps", self.steps, minimum=2))
        put(self, "seed", check_int(f"{name}.seed", self.seed, 0))
        put(self, "precision", check_choice(f"{name}.precision", self.precision, PRECISIONS))
        put(self, "multiflow_exact", check_bool(f"{name}.multiflow_exact", self.multiflow_exact))
        put(self, "residue_budget", check_int(f"{name}.residue_budget", self.residue_budget, minimum=1))
        put(self, "trajectory", check_bool(f"{name}.trajectory", self.trajectory))
        put(self, "device", check_device(f"{name}.device", self.device))
        if self.max_memory_gb is not None:
            put(self, "max_memory_gb", check_float(f"{name}.max_memory_gb", self.max_memory_gb, 0.0,
                                                   strict_minimum=True))
        self._check_inputs(name)
        if self.conditions is not None:
            if isinstance(self.conditions, dict):
                put(self, "conditions", ProteinConditions(**self.conditions))
            if not isinstance(self.conditions, ProteinConditions):
                raise InputError(f"{name}.conditions must be a ProteinConditions or a dict of its fields, got "
                                 f"{type(self.conditions).__name__}")
            inputs = next((k for k in ("sequence_in", "structure_in") if getattr(self, k) is not None), None)
            self.conditions.check_run(self.resolved_mode, inputs, self.lengths != DEFAULT_LENGTHS)

    def _check_inputs(self, name: str) -> None:
        given = {k: getattr(self, k) for k in ("sequence_in", "structure_in") if getattr(self, k) is not None}
        for k, v in given.items():
            if not isinstance(v, (*_INPUT_KINDS, BackboneChain, ProteinChain, GeneratedProteins)):
                raise InputError(f"{name}.{k} must be sequences / chains, a list or dict of them, or a path; got "
                                 f"{type(v).__name__}")
        if len(given) == 2:
            raise InputError(f"{name}: give sequence_in (folding) or structure_in (inverse folding), not both")
        inferred = {"sequence_in": "folding", "structure_in": "inverse_folding"}.get(next(iter(given), ""))
        mode = (inferred or "codesign" if self.mode is None
                else MODE_SPELLINGS[check_choice(f"{name}.mode", self.mode, MODE_SPELLINGS)])
        object.__setattr__(self, "resolved_mode", mode)
        needs = {"folding": "sequence_in", "inverse_folding": "structure_in"}.get(mode)
        if needs and needs not in given:
            what = "sequences to fold" if mode == "folding" else "backbones to design sequences for"
            flag = needs.replace("_", "-")
            raise InputError(f"{name}.mode {self.mode!r} needs {needs} (the {what}; --{flag} on the command line)")
        if not needs and given:
            raise InputError(f"{name}.mode {self.mode!r} takes no {next(iter(given))}; use mode 'folding' or "
                             "'inverse_folding', or leave mode None")

    def flow(self) -> ProteinFlowConfig:
        """The product generator's settings (rotation and sequence generators)."""
        rotations = RotationConfig(kind=self.rotations, jump_weight=self.jump_weight)  # type: ignore[arg-type]
        sequence = SequenceConfig(kind=self.sequence, scheduler=self.scheduler)  # type: ignore[arg-type]
        return ProteinFlowConfig(rotations=rotations, sequence=sequence, multiflow_exact=self.multiflow_exact)

    def sampler(self, steps: int) -> SamplerConfig:
        """The sampler's settings with ``steps`` time points (``self.steps`` or the model's default)."""
        return SamplerConfig(steps=steps, flow=self.flow(), mode=self.resolved_mode,  # type: ignore[arg-type]
                             precision=self.precision, start_time=self.conditions and self.conditions.start_time)

    def plan_settings(self) -> dict[str, Any]:
        """The ``generation`` part of the run settings (what the run folder is keyed by, with the sampler's)."""
        out = {"lengths": self.lengths, "per_length": self.per_length, "seed": self.seed,
               "residue_budget": self.residue_budget, "trajectory": self.trajectory}
        return out if self.conditions is None else {**out, "conditions": self.conditions.record()}


def _named(argument: str, items: Any, prefix: str) -> list[tuple[str, Any]]:
    """(name, item) of a dict (its keys), a list / tuple (``<prefix><k>``, or the chains' own names) or one item."""
    if isinstance(items, dict):
        if not all(isinstance(k, str) and k for k in items):
            raise InputError(f"{argument}: the keys of a dict name the inputs and must be non-empty strings")
        return list(items.items())
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    if not items:
        raise InputError(f"{argument} is empty; give at least one input")
    return [(getattr(x, "name", "") or f"{prefix}{k}", x) for k, x in enumerate(items)]


def _sequence_targets(seqs: Any) -> list[ProteinTarget]:
    looks_like_sequence = isinstance(seqs, str) and seqs.strip().isalpha() and not Path(seqs).expanduser().exists()
    if isinstance(seqs, os.PathLike) or isinstance(seqs, str) and not looks_like_sequence:
        path = Path(seqs).expanduser()
        if not os.path.lexists(path):  # a fifo, a folder, ... is refused by read_fasta, without opening it
            raise InputError(f"sequence_in: {str(seqs)!r} is neither a FASTA file nor a one-letter sequence")
        return [ProteinTarget(n, s) for n, s in read_fasta(path, "sequence_in")]
    return [ProteinTarget(n, check_sequence(f"sequence_in[{n!r}]", s)) for n, s in _named("sequence_in", seqs, "seq")]


def _structure_targets(chains: Any) -> list[ProteinTarget]:
    if isinstance(chains, (str, os.PathLike)):
        named = [(c.name, c) for c in read_backbones(chains, "structure_in")]  # checked there
    else:
        given = (zip(chains.ids, chains.chains) if isinstance(chains, GeneratedProteins)
                 else _named("structure_in", chains, "chain"))
        named = [(n, checked(as_backbone_chain(f"structure_in[{n!r}]", c), f"structure_in[{n!r}]")) for n, c in given]
    out = []
    for n, c in named:
        x = c.coords if c.coords.ndim == 3 else c.coords[0]
        out.append(ProteinTarget(n, c.sequence.replace("X", "A"), np.asarray(x, dtype=np.float64)))
    return out


def load_targets(config: ProteinGenerateConfig) -> list[ProteinTarget] | None:
    """The sequences (folding) or structures (inverse folding) of ``config``, read or converted; None otherwise."""
    if config.sequence_in is not None:
        return _sequence_targets(config.sequence_in)
    if config.structure_in is not None:
        return _structure_targets(config.structure_in)
    return None


@dataclass
class _Batch:
    """One sampled batch: per sample its manifest row, chain and (optionally) trajectory chain."""

    k: int
    seed: int
    rows: list[dict[str, Any]]
    chains: list[BackboneChain]
    trajectories: list[BackboneChain | None]
    wall_s: float


def _sample_batch(prep: PreparedGeneration, k: int, seed: int, trajectory: bool) -> _Batch:
    """Batch ``k`` of the run sampled with ``batch_seed(seed, k)`` (in memory)."""
    start, net, plan, idx, inputs, sampler = (time.perf_counter(), prep.model.net, prep.plan, prep.batches[k],
                                              prep.sample_inputs, prep.sampler)
    rng = torch.Generator(device=net.device).manual_seed(batch_seed(seed, k))
    res = sample_proteins(net, inputs.conditioning(plan, idx, sampler.mode, net.device), sampler, rng,
                          trajectory=trajectory)
    atoms = backbone_atoms(res.state, res.res_mask)  # [B, N, 4, 3]
    out = _Batch(k, batch_seed(seed, k), [], [], [], 0.0)
    for b, i in enumerate(idx):
        length, ident = plan.lengths[i], plan.ids[i]
        seq = indices_to_sequence(res.state.aatypes[b, :length].cpu().numpy())
        out.chains.append(BackboneChain.from_coords(atoms[b, :length], seq, name=ident))
        traj = None
        if trajectory and res.trajectory:
            coords = np.stack([backbone_atoms(s, res.res_mask.cpu())[b, :length]
                               for s in res.trajectory])  # [M, L, 4, 3]
            traj = BackboneChain.from_coords(coords, seq, name=ident)
        out.trajectories.append(traj)
        out.rows.append({"id": ident, "index": i, "length": length, "batch": k, "seed": out.seed, "sequence": seq,
                         "file": f"pdb/{ident}.pdb", "trajectory": f"traj/{ident}.pdb" if traj is not None else None,
                         **inputs.row(i)})
    out.wall_s = time.perf_counter() - start
    return out


def _write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True)


@dataclass(frozen=True)
class PreparedGeneration:
    """A protein generate run with every input checked (the twin of
    :class:`pipeline.crystals.generate.PreparedGeneration`): the model, the sampler, the plan of samples and their
    per-sample inputs, the batches (sample indices, sorted by length, cut by the residue budget), and what the run
    folder is opened with (``settings``, ``inputs``: the fingerprint of the model and the targets). Batch k draws
    from ``batch_seed(seed, k)``."""

    model: LoadedProteinModel
    sampler: SamplerConfig
    plan: GenerationPlan
    sample_inputs: SampleInputs
    batches: list[list[int]]
    settings: dict[str, Any]
    inputs: str

    @property
    def n_batches(self) -> int:
        return len(self.batches)


def prepare_generation(config: ProteinGenerateConfig, model: LoadedProteinModel | None = None) -> PreparedGeneration:
    """:class:`PreparedGeneration` of ``config``, every input checked (:class:`InputError`) before anything is
    written; ``model``: ``config.model`` already loaded (a cache), or None. :func:`generate_proteins` and the
    campaign's generate shards (:mod:`workflows.design.distributed`) open the same run folder with it."""
    targets = load_targets(config)
    model = model if model is not None else load_protein_model(config.model, config.device)
    check_motif_input(config.conditions, model)  # amortised motif method: a model with a motif input
    sampler = config.sampler(config.steps or model.default_steps(DEFAULT_STEPS))
    try:
        sampler.validate()
    except ValueError as exc:
        raise InputError(f"ProteinGenerateConfig: {exc}") from None
    plan, inputs = plan_inputs(config.lengths, config.per_length, config.seed, targets, config.conditions)
    batches = plan.batches(config.residue_budget)
    check_batches_fit(model.net.cfg, [[plan.lengths[i] for i in idx] for idx in batches], config.max_memory_gb,
                      config.device)
    settings = {"sampler": asdict(sampler), "generation": config.plan_settings(), "n": len(plan.ids)}
    tgt_fp = [(t.name, t.sequence, t.coords if t.coords is not None else "") for t in (targets or [])]
    return PreparedGeneration(model, sampler, plan, inputs, batches, settings,
                              fingerprint([list(model.inputs), tgt_fp]))


def batch_record(out: str | os.PathLike, k: int) -> Path:
    """``OUT/batches/<k>.json``: batch k of a generate run is done when it exists (written last)."""
    return Path(out) / "batches" / f"{k:05d}.json"


def write_batch(prepared: PreparedGeneration, config: ProteinGenerateConfig, out: str | os.PathLike, k: int) -> int:
    """Sample batch ``k`` of the run and write it into the run folder ``out`` (opened by the caller): its PDB files
    (and trajectories), then :func:`batch_record` last, atomically; nothing when that record exists. Returns the
    chains written. The batch depends only on (config, k), not on the process that samples it."""
    record = batch_record(out, k)
    if record.is_file():
        return 0
    batch = _sample_batch(prepared, k, config.seed, config.trajectory)
    for row, chain, traj in zip(batch.rows, batch.chains, batch.trajectories):
        write_structure(Path(out) / row["file"], chain)
        if traj is not None:
            write_structure(Path(out) / row["trajectory"], traj)
    _write_json(record, {"batch": k, "rows": batch.rows, "wall_s": batch.wall_s})
    return len(batch.rows)


def generate_proteins(config: ProteinGenerateConfig, *, out_dir: str | os.PathLike | None = None,
                      restart: bool = False, progress: bool = True) -> GeneratedProteins:
    """Generate the proteins of ``config``, in memory or into the run folder ``out_dir`` (module docstring). Bad
    inputs raise :class:`InputError` before the folder is touched (:func:`prepare_generation`)."""
    prep = prepare_generation(config)
    mode, n = prep.sampler.mode, len(prep.plan.ids)
    if out_dir is None:
        warn_untrained_lengths(prep.plan.lengths, prep.model)
        bar, done = tqdm(total=n, unit="protein", desc="generating", disable=not progress), []
        for k, idx in enumerate(prep.batches):
            done.append(_sample_batch(prep, k, config.seed, config.trajectory))
            bar.update(len(idx))
        bar.close()
        return _in_memory(done, n, mode, prep.settings)
    with open_run(out_dir, "generate-proteins", prep.settings, prep.inputs, restart=restart) as run:
        warn_untrained_lengths(prep.plan.lengths, prep.model)  # once the inputs and the folder are accepted
        bar = tqdm(total=n, unit="protein", desc="generating", disable=not progress)
        for k, idx in enumerate(prep.batches):
            write_batch(prep, config, run.path, k)
            bar.update(len(idx))
        bar.close()
        return _finish(run.path, prep.n_batches, mode, prep.settings)


def _summary(rows: list[dict[str, Any]], n_batches: int, wall: float, mode: str,
             settings: dict[str, Any]) -> ProteinGenerationSummary:
    return ProteinGenerationSummary(n=len(rows), mode=mode, batches=n_batches, wall_s=wall,
                                    samples_per_s=len(rows) / wall if wall > 0 else 0.0, settings=settings)


def _in_memory(batches: list[_Batch], n: int, mode: str, settings: dict[str, Any]) -> GeneratedProteins:
    rows: list[Any] = [None] * n
    for b in batches:
        for row, chain, traj in zip(b.rows, b.chains, b.trajectories):
            rows[row["index"]] = (row, chain, traj)
    summary = _summary([r for r, _, _ in rows], len(batches), sum(b.wall_s for b in batches), mode, settings)
    trajs = [t for _, _, t in rows]
    return GeneratedProteins([c for _, c, _ in rows], [r["sequence"] for r, _, _ in rows],
                             [r["id"] for r, _, _ in rows], summary, None,
                             trajs if any(t is not None for t in trajs) else None)


def _finish(out: Path, n_batches: int, mode: str, settings: dict[str, Any]) -> GeneratedProteins:
    rows, wall = [], 0.0
    for k in range(n_batches):
        rec = json.loads(batch_record(out, k).read_text())
        per = rec["wall_s"] / max(1, len(rec["rows"]))
        rows.extend({**r, "wall_s": per} for r in rec["rows"])
        wall += rec["wall_s"]
    rows.sort(key=lambda r: r["index"])
    summary = _summary(rows, n_batches, wall, mode, settings)
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
    chains = [replace(read_chain(out / r["file"]), name=r["id"]) for r in rows]
    trajs = [replace(read_chain(out / r["trajectory"], model="all"), name=r["id"]) for r in rows if r["trajectory"]]
    return GeneratedProteins(chains, [r["sequence"] for r in rows], [r["id"] for r in rows], summary, out,
                             trajs if len(trajs) == len(rows) and trajs else None)
