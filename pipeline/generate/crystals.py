"""Sampling crystals from a trained KO-DFM model, decoding them, and resumable generation runs.

:func:`sample_tokens` simulates the CTMC of the mixture path (KO section 3, exponential steps of KO
Algorithm 1, via :func:`manifolds.discrete.sample`) from the masked template (MASK on the 6 lattice
tokens and the 4 tokens of each of ``a`` atoms, PAD elsewhere; ``a`` drawn from the training set's
atom-count distribution or given) to t = 1 with the posterior of the DiT at a softmax temperature,
optionally with the probability-preserving corrector of KO eq. 35. Logits are restricted to the right
token kind at every position (:class:`pipeline.crystal_flow.CrystalPosterior`).

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
from pipeline.crystal_flow import CrystalModel, load_crystal_model, make_path, model_time
from structures.atomic import atomic_open
from structures.crystal_tokens import DecodeFailure, decode_batch, masked_template

RUN_FORMAT = 1


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
    generator = DiscreteGenerator(make_path(scheduler), corrector=config.corrector)

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
class GenerationRun:
    """The result of :func:`generate_crystals`: the manifest rows and the summary."""

    out_dir: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    structures: list[Any] = field(default_factory=list)  # Structure or DecodeFailure, by id (if loaded)


def _write_json(path: Path, obj: Any) -> None:
    with atomic_open(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def _cif_text(structure: Any) -> str:
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure))


def generate_crystals(model: CrystalModel | str | os.PathLike, n: int, out_dir: str | os.PathLike, *,
                      num_atoms: Sequence[int] | int | None = None, config: SamplingConfig = SamplingConfig(),
                      seed: int = 0, batch_size: int = 256, resume: bool = True, progress: bool = True,
                      keep_structures: bool = False) -> GenerationRun:
    """Generate ``n`` crystals into ``out_dir`` (CIFs + manifest), resuming an interrupted run.

    Raises ``ValueError`` when ``out_dir`` holds a run with other settings (unless ``resume=False``,
    which discards the previous batches).
    """
    config.validate()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not isinstance(model, CrystalModel):
        model = load_crystal_model(model)
    out = Path(out_dir)
    counts = _atom_counts(model, n, num_atoms, seed)
    model_id = str(model.path.name) if model.path else "in-memory"
    settings = {"format": RUN_FORMAT, "model": model_id, "model_code": model.record.get("code_version"),
                "model_step": model.record.get("training", {}).get("step"), "n": int(len(counts)), "seed": seed,
                "batch_size": batch_size, "steps": config.steps, "temperature": config.temperature,
                "corrector": config.corrector, "scheduler": config.scheduler or model.scheduler,
                "atom_counts_sha": _sha(counts)}
    run_path, batches = out / "run.json", out / "batches"
    if run_path.is_file() and resume:
        old = json.loads(run_path.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise ValueError(f"{out} holds a generation run with other settings ({', '.join(diff)}); "
                             "use another --out, or --restart to discard it")
    elif run_path.is_file() or batches.is_dir():
        for f in sorted(batches.glob("*.json")) if batches.is_dir() else []:
            f.unlink()
        for name in ("manifest.json", "manifest.csv"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(run_path, settings)

    starts = list(range(0, len(counts), batch_size))
    done = {k for k in range(len(starts)) if (batches / f"{k:05d}.json").is_file()}
    bar = tqdm(total=len(counts), initial=sum(min(batch_size, len(counts) - starts[k]) for k in done),
               unit="crystal", desc="generating", disable=not progress)
    for k, start in enumerate(starts):
        if k in done:
            continue
        tok = sample_tokens(model, counts[start:start + batch_size], config, _batch_rng(seed, k))
        decoded = decode_batch(tok.cpu())
        rows = []
        for j in range(len(decoded)):
            i = start + j
            s = decoded.structure(j)
            row: dict[str, Any] = {"id": f"gen_{i:06d}", "index": i, "num_atoms": int(counts[i]), "batch": k}
            if isinstance(s, DecodeFailure):
                row.update(status="decode_failed", reason=s.reason.value, detail=s.detail, file=None, formula=None)
            else:
                rel = f"cifs/gen_{i:06d}.cif"
                with atomic_open(out / rel) as f:
                    f.write(_cif_text(s))
                row.update(status="ok", reason=None, detail=None, file=rel, formula=s.composition.reduced_formula)
            rows.append(row)
        _write_json(batches / f"{k:05d}.json", {"batch": k, "tokens": tok.cpu().tolist(), "rows": rows})
        bar.update(len(rows))
    bar.close()
    return _finish(out, settings, len(starts), keep_structures)


def _sha(counts: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(counts, dtype=np.int64).tobytes()).hexdigest()[:16]


def _finish(out: Path, settings: dict[str, Any], n_batches: int, keep_structures: bool) -> GenerationRun:
    rows: list[dict[str, Any]] = []
    for k in range(n_batches):
        rows.extend(json.loads((out / "batches" / f"{k:05d}.json").read_text())["rows"])
    failures = Counter(r["reason"] for r in rows if r["status"] != "ok")
    summary = {"n": len(rows), "decoded": sum(r["status"] == "ok" for r in rows),
               "decode_failed": sum(failures.values()), "failures_by_reason": dict(sorted(failures.items())),
               "settings": settings}
    summary["decode_rate"] = summary["decoded"] / max(1, summary["n"])
    _write_json(out / "manifest.json", {"summary": summary, "rows": rows})
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
