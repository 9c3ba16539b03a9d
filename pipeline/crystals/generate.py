"""Sampling crystals from a trained KO-DFM model, decoding them, and resumable generation runs.

:func:`sample_tokens` simulates the CTMC of the mixture path (KO section 3, exponential steps of KO
Algorithm 1, via :func:`manifolds.discrete.sample`) from the masked template (MASK on the 6 lattice
tokens and the 4 tokens of each of ``a`` atoms, PAD elsewhere; ``a`` drawn from the training set's
atom-count distribution or given; a model with metric coordinates starts them uniform on the
grid and moves them with the kinetic-optimal velocity of KO eq. 29) to t = 1 with the posterior of the
DiT at a softmax temperature, optionally with the probability-preserving corrector of KO eq. 35.
Logits are restricted to the right token kind at every position (:class:`pipeline.crystals.flow.CrystalPosterior`).

:func:`generate_crystals` runs this in batches and writes ``OUT/cifs/<id>.cif`` plus a manifest
(``OUT/manifest.json`` and ``OUT/manifest.csv``: one row per sample, with the decode failure reason
when the tokens are not a crystal). Every file is written atomically; a batch is done when its
record ``OUT/batches/<k>.json`` exists, so a rerun continues where it stopped without duplicates.
Batch k uses its own seed (derived from the run seed and k), so results do not depend on where a run
was interrupted.

Conditioned generation (``CrystalGenerateConfig.conditions``: one or more
:class:`~pipeline.crystals.conditions.CrystalConditions`, ``n`` samples each, in that order): the conditions are
checked against the model before anything is written, each sample's atom count comes from its conditions
(formula, seed) or as above, and :func:`sample_tokens` samples each group of samples that share t0 and guidance
with the sampler inputs of :func:`pipeline.crystals.conditioning.condition_batch`. The manifest then has a
``condition`` column (the label) and ``condition_index``; the records are in the run settings.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from manifolds.discrete import Conditioning, DiscreteGenerator, sample
from manifolds.discrete.names import SCHEDULER_NAMES
from manifolds.discrete.sampler import tempered
from manifolds.samplers import time_grid
from pipeline.crystals.conditions import CrystalConditions, load_guidance_predictor
from pipeline.crystals.flow import CrystalModel, load_crystal_model, make_path, model_time
from pipeline.common.run import fingerprint, open_run
from pipeline.crystals.results import GeneratedCrystals, GenerationSummary
from structures.atomic import atomic_open
from structures.errors import InputError
from structures.crystals.checks import cif_roundtrip_problem, cif_text
from structures.crystals.tokens import PAD, DecodeFailure, decode_batch
from structures.validate import check_choice, check_float, check_instance, check_int, check_int_list

__all__ = ["CrystalGenerateConfig", "GeneratedCrystals", "GenerationSummary", "PreparedGeneration", "atom_counts",
           "batch_record", "batch_rng", "draw_num_atoms", "generate_crystals", "load_model", "prepare_generation",
           "sample_crystals", "sample_tokens", "write_batch"]


@dataclass(frozen=True)
class CrystalGenerateConfig:
    """What to generate and how to sample it (KO section 8.2 defaults: 250 steps, temperature 0.7).

    ``n`` crystals from ``model`` (a shipped model name, ``perov_5`` or ``carbon_24``, a ``.safetensors`` file of
    ``train crystals``, or a loaded :class:`~pipeline.crystals.flow.CrystalModel`); ``num_atoms``: one atom count
    for all, ``n`` counts, or None to draw them from the model's training distribution. The sampler: ``steps``
    CTMC steps, softmax ``temperature``, ``corrector`` weight of the KO eq. 35 corrector velocity, ``scheduler``
    kappa_t (None: the model's own; "kinetic-optimal" and "kinetic_optimal" are the same). Batch k of
    ``batch_size`` crystals draws from its own seed, derived from ``seed`` and k. ``conditions``: a
    :class:`~pipeline.crystals.conditions.CrystalConditions` or a sequence of them, ``n`` crystals for each.
    """

    n: int = 200
    model: Any = "perov_5"
    num_atoms: int | tuple[int, ...] | None = None
    steps: int = 250
    temperature: float = 0.7
    corrector: float = 0.0
    scheduler: str | None = None
    seed: int = 0
    batch_size: int = 256
    conditions: Any = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(f"{name}.n", self.n, minimum=1)
        check_instance(f"{name}.model", self.model, (str, os.PathLike, CrystalModel),
                       "a shipped model name (perov_5, carbon_24), a .safetensors path or a CrystalModel")
        if self.num_atoms is not None:
            if isinstance(self.num_atoms, (int, np.integer)) and not isinstance(self.num_atoms, bool):
                object.__setattr__(self, "num_atoms", check_int(f"{name}.num_atoms", self.num_atoms, minimum=1))
            else:
                counts = check_int_list(f"{name}.num_atoms", self.num_atoms, minimum=1)
                if len(counts) != self.n:
                    raise InputError(f"{name}.num_atoms: {len(counts)} atom counts for n = {self.n} crystals; give "
                                     "one count for all or one per crystal")
                object.__setattr__(self, "num_atoms", counts)
        check_int(f"{name}.steps", self.steps, minimum=1)
        object.__setattr__(self, "temperature", check_float(f"{name}.temperature", self.temperature, 0.0,
                                                            strict_minimum=True))
        object.__setattr__(self, "corrector", check_float(f"{name}.corrector", self.corrector, 0.0))
        if self.scheduler is not None:
            object.__setattr__(self, "scheduler", check_choice(f"{name}.scheduler", self.scheduler, SCHEDULER_NAMES))
        check_int(f"{name}.seed", self.seed, 0)
        check_int(f"{name}.batch_size", self.batch_size, minimum=1)
        if self.conditions is not None:
            conds = (self.conditions,) if isinstance(self.conditions, CrystalConditions) else self.conditions
            if isinstance(conds, (str, bytes)) or not isinstance(conds, Sequence) or not conds:
                raise InputError(f"{name}.conditions must be a CrystalConditions or a non-empty list of them, got "
                                 f"{type(conds).__name__}")
            for i, c in enumerate(conds):
                check_instance(f"{name}.conditions[{i}]", c, CrystalConditions, "a CrystalConditions")
            if self.corrector and any(c.guided for c in conds):
                raise InputError(f"{name}.corrector: guidance needs the closed-form marginal rates (KO eq. 76), "
                                 "which the corrector velocity does not have; use corrector 0")
            object.__setattr__(self, "conditions", tuple(conds))

    @property
    def total(self) -> int:
        """Crystals of the run: ``n`` for each condition (``n`` without conditions)."""
        return self.n * len(self.conditions or (None,))

    def per_sample_conditions(self) -> list[CrystalConditions | None]:
        """The condition of every crystal of the run, in order (``n`` per condition)."""
        return [c for c in (self.conditions or (None,)) for _ in range(self.n)]

    def run_settings(self, model: CrystalModel) -> dict[str, Any]:
        """The settings a run folder is keyed by (``scheduler``: the one actually used)."""
        settings = {"n": self.n, "seed": self.seed, "batch_size": self.batch_size, "steps": self.steps,
                    "temperature": self.temperature, "corrector": self.corrector,
                    "scheduler": self.scheduler or model.scheduler}
        if self.conditions:
            settings["conditions"] = [c.record() for c in self.conditions]
        return settings


def load_model(model: CrystalModel | str | os.PathLike) -> CrystalModel:
    """``model`` itself when loaded, else :func:`~pipeline.crystals.flow.load_crystal_model` of the name or file."""
    return model if isinstance(model, CrystalModel) else load_crystal_model(model)


def draw_num_atoms(model: CrystalModel, n: int, seed: int) -> np.ndarray:
    """``n`` atom counts from the training set's distribution stored in the model record, ``[n]``."""
    p = model.atom_count_distribution
    if p.size == 0 or p.sum() <= 0:
        raise InputError("CrystalGenerateConfig.num_atoms: the model record has no atom-count distribution; give "
                         "the atom counts explicitly")
    return np.random.default_rng(seed).choice(len(p), size=n, p=p / p.sum()).astype(np.int64)


def atom_counts(config: CrystalGenerateConfig, model: CrystalModel) -> np.ndarray:
    """``[total]`` atom counts: the given ones (per condition), or drawn from the training distribution with
    ``config.seed``; those a condition sets (formula, seed; a reduced formula's drawn with the seed and the
    condition's index). InputError when one is outside 1..``model.max_atoms``, or below the number of required
    elements, or when ``num_atoms`` is given to conditions that set the count."""
    conds = config.conditions or ()
    own = [c.atom_counts(model, config.n, np.random.default_rng([config.seed, i])) for i, c in enumerate(conds)]
    if conds and config.num_atoms is not None and any(o is not None for o in own):
        raise InputError("CrystalGenerateConfig.num_atoms: the conditions set the atom count (formula or seed); "
                         "leave num_atoms unset")
    if own and all(o is not None for o in own):
        counts = np.concatenate(own)
    elif config.num_atoms is None:
        counts = draw_num_atoms(model, config.total, config.seed)
    elif isinstance(config.num_atoms, int):
        counts = np.full(config.total, config.num_atoms, dtype=np.int64)
    else:
        counts = np.tile(np.asarray(config.num_atoms, dtype=np.int64), len(conds) or 1)
    for i, o in enumerate(own):
        if o is not None:
            counts[i * config.n:(i + 1) * config.n] = o
        if len(conds[i].required) > counts[i * config.n:(i + 1) * config.n].min():
            raise InputError(f"CrystalConditions.required: {len(conds[i].required)} required elements in crystals "
                             f"of {counts[i * config.n:(i + 1) * config.n].min()} atoms; give fewer or more atoms")
    if counts.min() < 1 or counts.max() > model.max_atoms:
        raise InputError(f"CrystalGenerateConfig.num_atoms: atom counts must be in 1..{model.max_atoms} for this "
                         f"model, got {counts.min()}..{counts.max()}")
    return counts


@torch.no_grad()
def sample_tokens(model: CrystalModel, num_atoms: Sequence[int] | np.ndarray,
                  config: CrystalGenerateConfig = CrystalGenerateConfig(), rng: torch.Generator | None = None,
                  progress: bool = False, conditions: Sequence[CrystalConditions | None] | None = None) -> Tensor:
    """Sample token sequences ``[B, 6 + 4 max(num_atoms)]`` for the given atom counts (one batch) with the
    sampler settings of ``config`` (its ``n``, ``model``, ``num_atoms``, ``seed``, ``conditions`` are not used
    here); ``conditions``: one per sample (None: unconditional), checked against the model by the caller
    (:meth:`CrystalConditions.check_model`). Samples that share t0 and guidance are sampled together
    (:func:`~pipeline.crystals.conditioning.group_samples`), one group after the other with ``rng``."""
    from pipeline.crystals.conditioning import carry_over, condition_batch, group_samples, refinement_steps

    n = np.asarray(num_atoms, dtype=np.int64)
    if n.size and (n.min() < 1 or n.max() > model.max_atoms):
        raise InputError(f"sample_tokens(num_atoms=...): atom counts must be in 1..{model.max_atoms} for this model, "
                         f"got {n.min()}..{n.max()}")
    scheduler = config.scheduler or model.scheduler
    if model.coords.metric and scheduler != model.scheduler:
        raise InputError(f"CrystalGenerateConfig.scheduler: this model moves its coordinates on the metric path "
                         f"it was trained with; sample it with its own scheduler {model.scheduler!r}, not "
                         f"{scheduler!r}")
    conds = [None] * len(n) if conditions is None else list(conditions)
    if config.corrector and any(c is not None and c.guided for c in conds):
        raise InputError("CrystalGenerateConfig.corrector: guidance needs the closed-form marginal rates (KO eq. 76), "
                         "which the corrector velocity does not have; use corrector 0")
    generator = DiscreteGenerator(make_path(scheduler, model.coords), corrector=config.corrector)
    out = None
    for idx in group_samples(conds, n):
        batch = condition_batch(model, [conds[i] for i in idx], n[idx], rng, scheduler)

        def posterior(x: Tensor, t: Tensor, atom_mask: Tensor = batch.atom_mask) -> Tensor:
            # the network sees the time of its training scheduler at the sampler's noise level (KO E.1)
            return model.posterior(x, model_time(t, model.scheduler, scheduler), atom_mask).float()

        fn = posterior if batch.guidance is None else carry_over(posterior)
        grid = time_grid(config.steps) if batch.t0 == 0 else time_grid(refinement_steps(config.steps, batch.t0),
                                                                       t_min=batch.t0)
        cond = Conditioning(batch.fixed, batch.allowed, batch.replace, batch.guidance)
        x = sample(generator, tempered(fn, config.temperature), batch.x_init, grid, condition=cond, rng=rng,
                   progress=progress)
        if out is None:
            out = torch.full((len(n), 6 + 4 * int(n.max())), PAD, dtype=x.dtype, device=x.device)
        out[torch.as_tensor(idx, device=x.device), : x.shape[1]] = x
    return out


def sample_crystals(model: CrystalModel, counts: np.ndarray, config: CrystalGenerateConfig,
                    progress: bool = False) -> list[Any]:
    """In-memory generation of ``len(counts)`` crystals in batches of ``config.batch_size`` (batch k seeded from
    ``config.seed`` and k), with the conditions of ``config`` (``n`` per condition, in order; counts from
    :func:`atom_counts`): a list of pymatgen Structures or :class:`DecodeFailure` (falsy), in order."""
    out: list[Any] = []
    conds = config.per_sample_conditions() if config.conditions else None
    for k, start in enumerate(range(0, len(counts), config.batch_size)):
        part = None if conds is None else conds[start:start + config.batch_size]
        tok = sample_tokens(model, counts[start:start + config.batch_size], config, batch_rng(config.seed, k),
                            progress, part)
        out.extend(decode_batch(tok.cpu()).structures())
    return out


def batch_rng(seed: int, k: int) -> torch.Generator:
    """The generator of batch ``k`` of a run with ``seed``: seeded from ``SeedSequence([seed, k])``."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))


@dataclass(frozen=True)
class PreparedGeneration:
    """A crystal generate run with every input checked (the twin of
    :class:`pipeline.proteins.generate.PreparedGeneration`): the model, the atom counts ``[total]``, each sample's
    condition (None: unconditional run), and what the run folder is opened with (``settings``, ``inputs``: the
    fingerprint of the model file, the counts and the guidance predictors). Batch k is samples
    ``k * batch_size .. (k + 1) * batch_size - 1``, drawn with :func:`batch_rng` (seed, k)."""

    model: CrystalModel
    counts: np.ndarray
    conditions: list[CrystalConditions | None] | None
    settings: dict[str, Any]
    inputs: str
    batch_size: int

    @property
    def n_batches(self) -> int:
        return -(-len(self.counts) // self.batch_size)

    def batch(self, k: int) -> slice:
        return slice(k * self.batch_size, min(len(self.counts), (k + 1) * self.batch_size))


def prepare_generation(config: CrystalGenerateConfig, model: CrystalModel | None = None) -> PreparedGeneration:
    """:class:`PreparedGeneration` of ``config`` (InputError on a bad input, before anything is written);
    ``model``: ``config.model`` already loaded (a cache), or None. :func:`generate_crystals` and the campaign's
    generate shards (:mod:`workflows.design.distributed`) open the same run folder with it."""
    model = model if model is not None else load_model(config.model)
    for c in config.conditions or ():
        c.check_model(model)
    counts = atom_counts(config, model)
    parts = [model.path if model.path else repr(model.record), counts]
    predictors = sorted({c.predictor for c in config.conditions or () if c.predictor})
    parts += [load_guidance_predictor(p).path or p for p in predictors]  # a retrained predictor is another run
    conds = config.per_sample_conditions() if config.conditions else None
    return PreparedGeneration(model, counts, conds, config.run_settings(model), fingerprint(parts),
                              config.batch_size)


def batch_record(out: str | os.PathLike, k: int) -> Path:
    """``OUT/batches/<k>.json``: batch k of a generate run is done when it exists (written last)."""
    return Path(out) / "batches" / f"{k:05d}.json"


def write_batch(prepared: PreparedGeneration, config: CrystalGenerateConfig, out: str | os.PathLike, k: int) -> int:
    """Sample batch ``k`` of the run and write it into the run folder ``out`` (opened by the caller): its CIFs,
    then :func:`batch_record` last, atomically; nothing when that record exists. Returns the crystals written.
    The batch depends only on (config, k), not on the process that samples it."""
    record = batch_record(out, k)
    if record.is_file():
        return 0
    sl = prepared.batch(k)
    part = None if prepared.conditions is None else prepared.conditions[sl]
    tok = sample_tokens(prepared.model, prepared.counts[sl], config, batch_rng(config.seed, k), conditions=part)
    decoded = decode_batch(tok.cpu())
    rows = [_write_sample(Path(out), decoded.structure(j), sl.start + j, int(prepared.counts[sl.start + j]), k)
            for j in range(len(decoded))]
    for j, row in enumerate(rows):
        if part is not None:
            row.update(condition=part[j].label(), condition_index=(sl.start + j) // config.n)
    _write_json(record, {"batch": k, "tokens": tok.cpu().tolist(), "rows": rows})
    return len(rows)


def generate_crystals(config: CrystalGenerateConfig, out_dir: str | os.PathLike | None = None, *,
                      restart: bool = False, progress: bool = True) -> GeneratedCrystals:
    """Generate ``config.n`` crystals (per condition: :class:`CrystalGenerateConfig`); the same crystals with or
    without ``out_dir``.

    Without ``out_dir`` nothing is written. With it, the folder is a run folder
    (:func:`pipeline.common.run.open_run`; docs/runs.md) holding CIFs and the manifest (module doc): a rerun with
    the same model file, settings and atom counts resumes; anything else is refused with
    :class:`~structures.errors.InputError` unless ``restart``. A sample whose tokens decode to a structure that a
    CIF cannot hold (two atoms on one site: pymatgen cannot read such a file back) gets ``status =
    "not_writable"`` and no CIF; its exact structure stays in the batch record and in the result.
    """
    prep = prepare_generation(config)
    if out_dir is None:
        samples = sample_crystals(prep.model, prep.counts, config, progress=progress)
        ok = [(i, s) for i, s in enumerate(samples) if s]
        failures = [(i, s) for i, s in enumerate(samples) if not s]
        reasons = Counter(f.reason.value for _, f in failures)
        summary = GenerationSummary(n=len(samples), decoded=len(ok), decode_failed=len(failures),
                                    failures_by_reason=dict(sorted(reasons.items())), not_writable=0,
                                    decode_rate=len(ok) / max(1, len(samples)), settings=prep.settings)
        return GeneratedCrystals([s for _, s in ok], [f"gen_{i:06d}" for i, _ in ok], failures, summary)
    with open_run(out_dir, "generate-crystals", prep.settings, prep.inputs, restart=restart) as run:
        bar = tqdm(total=len(prep.counts), unit="crystal", desc="generating", disable=not progress)
        for k in range(prep.n_batches):
            write_batch(prep, config, run.path, k)
            bar.update(prep.batch(k).stop - prep.batch(k).start)
        bar.close()
        return _finish(run.path, {**prep.settings, "inputs": prep.inputs}, prep.n_batches)


def _write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def _write_sample(out: Path, s: Any, i: int, num_atoms: int, batch: int) -> dict[str, Any]:
    """One manifest row; writes ``cifs/gen_<i>.cif`` when the structure survives a CIF round trip."""
    row: dict[str, Any] = {"id": f"gen_{i:06d}", "index": i, "num_atoms": num_atoms, "batch": batch}
    if isinstance(s, DecodeFailure):
        row.update(status="decode_failed", reason=s.reason.value, detail=s.detail, file=None, formula=None)
        return row
    text = cif_text(s)
    problem = cif_roundtrip_problem(text, len(s))
    if problem:
        row.update(status="not_writable", reason="cif_unreadable", detail=problem, file=None,
                   formula=s.composition.reduced_formula)
        return row
    rel = f"cifs/gen_{i:06d}.cif"
    with atomic_open(out / rel) as f:
        f.write(text)
    row.update(status="ok", reason=None, detail=None, file=rel, formula=s.composition.reduced_formula)
    return row


def _finish(out: Path, settings: dict[str, Any], n_batches: int) -> GeneratedCrystals:
    """The manifest (JSON and CSV) of the finished batches, and the result: the structures decoded from the stored
    tokens (exact, unlike re-reading the CIFs: a CIF cannot hold two atoms on one site, a structurally invalid
    sample that must still be scored)."""
    rows: list[dict[str, Any]] = []
    for k in range(n_batches):
        rows.extend(json.loads(batch_record(out, k).read_text())["rows"])
    failures = Counter(r["reason"] for r in rows if r["status"] == "decode_failed")
    decoded = sum(r["status"] != "decode_failed" for r in rows)
    summary = GenerationSummary(n=len(rows), decoded=decoded, decode_failed=sum(failures.values()),
                                failures_by_reason=dict(sorted(failures.items())),
                                not_writable=sum(r["status"] == "not_writable" for r in rows),
                                decode_rate=decoded / max(1, len(rows)), settings=settings)
    _write_json(out / "manifest.json", {"summary": summary.to_dict(), "rows": rows})
    import csv
    import io

    buf = io.StringIO()
    cols = ["id", "index", "num_atoms", "batch", "status", "reason", "formula", "file", "detail"]
    if any("condition" in r for r in rows):
        cols.insert(4, "condition")
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    with atomic_open(out / "manifest.csv") as f:
        f.write(buf.getvalue())
    samples: list[Any] = []
    for k in range(n_batches):
        tokens = json.loads(batch_record(out, k).read_text())["tokens"]
        samples.extend(decode_batch(np.asarray(tokens, dtype=np.int64)).structures())
    ok = [(r["id"], s) for r, s in zip(rows, samples) if s]
    failures = [(r["index"], s) for r, s in zip(rows, samples) if not s]
    return GeneratedCrystals([s for _, s in ok], [i for i, _ in ok], failures, summary, out)
