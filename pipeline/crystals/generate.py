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
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from manifolds.discrete import DiscreteGenerator, sample
from manifolds.samplers import time_grid
from pipeline.crystals.flow import (FRAC_OFFSET, N_RING, CrystalModel, coordinate_positions, load_crystal_model,
                                   make_path, model_time)
from pipeline.common.records import JsonRecord
from pipeline.common.run import fingerprint, open_run
from structures.atomic import atomic_open
from structures.errors import InputError
from structures.crystals.tokens import DecodeFailure, decode_batch, masked_template



@dataclass(frozen=True)
class SamplingConfig:
    """Sampler settings (KO section 8.2 defaults: 250 steps, temperature 0.7)."""

    steps: int = 250
    temperature: float = 0.7
    corrector: float = 0.0  # weight of the KO eq. 35 corrector velocity
    scheduler: str | None = None  # None: the scheduler the model was trained with

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.corrector < 0:
            raise ValueError(f"corrector weight must be >= 0, got {self.corrector}")


def draw_num_atoms(model: CrystalModel, n: int, seed: int) -> np.ndarray:
    """``n`` atom counts from the training set's distribution stored in the model record, ``[n]``."""
    p = model.atom_count_distribution
    if p.size == 0 or p.sum() <= 0:
        raise ValueError("the model record has no atom-count distribution; give the atom counts explicitly")
    return np.random.default_rng(seed).choice(len(p), size=n, p=p / p.sum()).astype(np.int64)


@torch.no_grad()
def sample_tokens(model: CrystalModel, num_atoms: Sequence[int] | np.ndarray, config: SamplingConfig = SamplingConfig(),
                  rng: torch.Generator | None = None, progress: bool = False) -> Tensor:
    """Sample token sequences ``[B, 6 + 4 max(num_atoms)]`` for the given atom counts (one batch)."""
    config.validate()
    n = np.asarray(num_atoms, dtype=np.int64)
    if n.size and (n.min() < 1 or n.max() > model.max_atoms):
        raise ValueError(f"atom counts must be in 1..{model.max_atoms} for this model, got {n.min()}..{n.max()}")
    template = masked_template(n, int(n.max())).to_torch()
    device = next(model.posterior.parameters()).device
    x0 = template.tokens.to(device)  # [B, 6 + 4A]
    atom_mask = template.atom_mask.to(device)  # [B, A]
    scheduler = config.scheduler or model.scheduler
    if model.coords.metric:
        if scheduler != model.scheduler:
            raise InputError(f"this model moves its coordinates on the metric path it was trained with; sample it "
                             f"with its own scheduler {model.scheduler!r}, not {scheduler!r}")
        # source of the metric path: uniform grid values on the coordinates of real atoms (KO eq. 27, beta_0 = 0)
        coord = coordinate_positions(atom_mask.shape[1], device)[None] & template.token_mask.to(device)  # [B, L]
        uniform = torch.randint(0, N_RING, x0.shape, generator=rng, device=device) + FRAC_OFFSET
        x0 = torch.where(coord, uniform, x0)
    generator = DiscreteGenerator(make_path(scheduler, model.coords), corrector=config.corrector)

    def posterior(x: Tensor, t: Tensor) -> Tensor:
        # the network sees the time of its training scheduler at the sampler's noise level (KO E.1)
        return model.posterior(x, model_time(t, model.scheduler, scheduler), atom_mask).float()

    return sample(generator, posterior, x0, time_grid(config.steps), temperature=config.temperature,
                  fixed=~template.token_mask.to(device), rng=rng, progress=progress)


def sample_crystals(model: CrystalModel | str | os.PathLike, n: int | None = None,
                    num_atoms: Sequence[int] | None = None, config: SamplingConfig = SamplingConfig(),
                    seed: int = 0, batch_size: int = 256, progress: bool = False) -> list[Any]:
    """In-memory generation: a list of pymatgen Structures or :class:`DecodeFailure` (falsy), in order."""
    if not isinstance(model, CrystalModel):
        model = load_crystal_model(model)
    counts = _atom_counts(model, n, num_atoms, seed)
    out: list[Any] = []
    for k, start in enumerate(range(0, len(counts), batch_size)):
        tok = sample_tokens(model, counts[start:start + batch_size], config, _batch_rng(seed, k), progress)
        out.extend(decode_batch(tok.cpu()).structures())
    return out


def _atom_counts(model: CrystalModel, n: int | None, num_atoms: Sequence[int] | int | None, seed: int) -> np.ndarray:
    if num_atoms is None:
        if n is None or n < 1:
            raise ValueError("give the number of crystals n (>= 1) or their atom counts")
        return draw_num_atoms(model, n, seed)
    if isinstance(num_atoms, (int, np.integer)):
        if n is None or n < 1:
            raise ValueError("give the number of crystals n (>= 1) with a single atom count")
        return np.full(n, int(num_atoms), dtype=np.int64)
    counts = np.asarray(list(num_atoms), dtype=np.int64)
    if n is not None and n != len(counts):
        raise ValueError(f"n = {n} but {len(counts)} atom counts were given")
    if counts.size == 0:
        raise ValueError("no atom counts given")
    return counts


def _batch_rng(seed: int, k: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))


# ---------------------------------------------------------------------------------------------
# Resumable runs on disk
# ---------------------------------------------------------------------------------------------


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
class GenerationRun:
    """The result of :func:`generate_crystals`: the manifest rows and the summary."""

    out_dir: Path
    rows: list[dict[str, Any]]
    summary: GenerationSummary
    structures: list[Any] = field(default_factory=list)  # Structure or DecodeFailure, by id (if loaded)


def _write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def _cif_text(structure: Any) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure))


def generate_crystals(model: CrystalModel | str | os.PathLike, n: int, out_dir: str | os.PathLike, *,
                      num_atoms: Sequence[int] | int | None = None, config: SamplingConfig = SamplingConfig(),
                      seed: int = 0, batch_size: int = 256, restart: bool = False, progress: bool = True,
                      keep_structures: bool = False) -> GenerationRun:
    """Generate ``n`` crystals into ``out_dir`` (CIFs + manifest), resuming an interrupted run.

    The folder is a run folder (:func:`pipeline.common.run.open_run`): a rerun with the same model
    file, settings and atom counts resumes; anything else is refused with
    :class:`~structures.errors.InputError` unless ``restart``. A sample whose tokens decode to a
    structure that a CIF cannot hold (two atoms on one site: pymatgen cannot read such a file back)
    gets ``status = "not_writable"`` and no CIF; its exact structure stays in the batch record.
    """
    try:
        config.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(model, CrystalModel):
        model = load_crystal_model(model)
    try:
        counts = _atom_counts(model, n, num_atoms, seed)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if counts.min() < 1 or counts.max() > model.max_atoms:
        raise InputError(f"atom counts must be in 1..{model.max_atoms} for this model, got "
                         f"{counts.min()}..{counts.max()}")
    settings = {"n": int(len(counts)), "seed": seed, "batch_size": batch_size, "steps": config.steps,
                "temperature": config.temperature, "corrector": config.corrector,
                "scheduler": config.scheduler or model.scheduler}
    inputs = fingerprint([model.path if model.path else repr(model.record), counts])
    with open_run(out_dir, "generate-crystals", settings, inputs, restart=restart) as run:
        out = run.path
        starts = list(range(0, len(counts), batch_size))
        batches = out / "batches"
        done = {k for k in range(len(starts)) if (batches / f"{k:05d}.json").is_file()}
        bar = tqdm(total=len(counts), initial=sum(min(batch_size, len(counts) - starts[k]) for k in done),
                   unit="crystal", desc="generating", disable=not progress)
        for k, start in enumerate(starts):
            if k in done:
                continue
            tok = sample_tokens(model, counts[start:start + batch_size], config, _batch_rng(seed, k))
            decoded = decode_batch(tok.cpu())
            rows = [_write_sample(out, decoded.structure(j), start + j, int(counts[start + j]), k)
                    for j in range(len(decoded))]
            _write_json(batches / f"{k:05d}.json", {"batch": k, "tokens": tok.cpu().tolist(), "rows": rows})
            bar.update(len(rows))
        bar.close()
        return _finish(out, {**settings, "inputs": inputs}, len(starts), keep_structures)


def _write_sample(out: Path, s: Any, i: int, num_atoms: int, batch: int) -> dict[str, Any]:
    """One manifest row; writes ``cifs/gen_<i>.cif`` when the structure survives a CIF round trip."""
    row: dict[str, Any] = {"id": f"gen_{i:06d}", "index": i, "num_atoms": num_atoms, "batch": batch}
    if isinstance(s, DecodeFailure):
        row.update(status="decode_failed", reason=s.reason.value, detail=s.detail, file=None, formula=None)
        return row
    text = _cif_text(s)
    problem = cif_problem(text, len(s))
    if problem:
        row.update(status="not_writable", reason="cif_unreadable", detail=problem, file=None,
                   formula=s.composition.reduced_formula)
        return row
    rel = f"cifs/gen_{i:06d}.cif"
    with atomic_open(out / rel) as f:
        f.write(text)
    row.update(status="ok", reason=None, detail=None, file=rel, formula=s.composition.reduced_formula)
    return row


def cif_problem(text: str, n_sites: int) -> str | None:
    """Why a CIF text does not read back as the same number of sites (None when it does)."""
    import warnings

    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = Structure.from_str(text, fmt="cif")
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for unreadable CIFs
        return f"pymatgen cannot read it back ({type(exc).__name__}); e.g. two atoms on one site"
    if len(back) != n_sites:
        return f"reads back with {len(back)} of {n_sites} sites (atoms on one site were merged)"
    return None


def _finish(out: Path, settings: dict[str, Any], n_batches: int, keep_structures: bool) -> GenerationRun:
    rows: list[dict[str, Any]] = []
    for k in range(n_batches):
        rows.extend(json.loads((out / "batches" / f"{k:05d}.json").read_text())["rows"])
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
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    with atomic_open(out / "manifest.csv") as f:
        f.write(buf.getvalue())
    structures: list[Any] = []
    if keep_structures:  # decoded from the stored tokens: exact, unlike re-reading the CIFs (a CIF cannot
        # hold two atoms on one site, a structurally invalid sample that must still be scored)
        for k in range(n_batches):
            tokens = json.loads((out / "batches" / f"{k:05d}.json").read_text())["tokens"]
            structures.extend(decode_batch(np.asarray(tokens, dtype=np.int64)).structures())
    return GenerationRun(out_dir=out, rows=rows, summary=summary, structures=structures)
