"""What designed proteins must satisfy: :class:`ProteinConditions`, the one description used by generation
(:mod:`pipeline.proteins.generate`), the command line and the Python API; the twin of
:class:`pipeline.crystals.conditions.CrystalConditions` (docs/conditioning.md, "Proteins").

* ``motif`` (a PDB / mmCIF file) + ``contig`` (RFdiffusion's syntax, :mod:`structures.proteins.contig`) + an
  optional total ``length`` range: motif scaffolding. Each sample draws its own layout from the contig, seeded by
  the run seed and the sample's index (reproducible, independent of batching); the motif residues keep their
  frames (translation and rotation) and, with ``motif_sequence`` (or ``:seq`` segments), their amino acids.
* ``refine`` (a PDB / mmCIF file with one chain) + ``start_time`` t0 in (0, 1): refinement (RFdiffusion's partial
  diffusion): the chain and its sequence are noised to t0 along the sampler's paths and sampled from t0 to 1.
* ``fix`` (``"A5=W,A9=H"`` or a dict): fixed amino acids. A key with a chain letter (``A5``) is a residue of the
  input file by author number: a motif residue (it must be one the contig places) or a residue of the refined
  chain; a bare number (``12``) is a position of the designed chain, 1-based (every sample must be that long).
  A fixed amino acid overrides the motif's own.
* ``forbid`` (``"C"``, ``"C,M"``): amino acids no designed residue may take; ``allowed`` (``"12=DE,A7=KR"``, keys as
  ``fix``): the amino acids a residue may take. Both restrict the sequence CTMC's rates at every step
  (:class:`~pipeline.proteins.conditioning.Conditioning` ``allowed``); residues whose amino acid is given (fixed,
  motif sequence) keep it (``fix`` naming a forbidden amino acid is refused).

Checks that need no model run when a :class:`ProteinConditions` is made (the files are read then);
:meth:`ProteinConditions.check_run` adds those against the run (mode, other inputs); positions against the sample
lengths are checked when the run is planned (:func:`plan_inputs`), before anything is written. Every failure is
an :class:`~structures.errors.InputError` naming the field; the model's motif input (``amortised``) is checked by
:mod:`pipeline.proteins.model_checks`. :func:`motif_conditioning` turns placements into the sampler's conditioning.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.proteins.conditioning import Conditioning
from pipeline.proteins.motif_guidance import DEFAULT_GUIDANCE
from pipeline.proteins.replacement import MOTIF_METHODS, MotifCondition
from pipeline.proteins.sampler import GenerationPlan, ProteinTarget, batch_conditioning, plan_samples
from pipeline.proteins.sequence import NUM_AA
from structures.errors import InputError
from structures.proteins.assignments import Key, assignments, key_text, letters
from structures.proteins.contig import ContigSpec, parse_contig
from structures.proteins.frames import frames_from_atoms
from structures.proteins.inputs import read_backbones
from structures.proteins.io import BackboneChain
from structures.proteins.motif import Motif, MotifPlacement, place_motif, read_motif
from structures.proteins.residue_constants import MASK_INDEX, RESTYPES, indices_to_sequence, sequence_to_indices
from structures.validate import check_bool, check_choice, check_float, check_path

__all__ = ["ProteinConditions", "SampleInputs", "motif_conditioning", "plan_inputs"]

_NAME = "ProteinConditions"
_DRAWS = 24  # stream tag of the contig draws' seeds (batch seeds use [seed, k])


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class ProteinConditions:
    """Conditions on one set of designed proteins (module docstring). Every field is optional; combinations that
    cannot hold together (a contig without a motif, a motif with refinement, ...) are refused when made."""

    motif: str | os.PathLike | None = None
    contig: str | ContigSpec | None = None
    length: str | int | tuple[int, int] | None = None  # total length range of the contig, e.g. "60-100"
    motif_sequence: bool = False
    motif_method: str = "replacement"  # how the sampler holds the motif (pipeline/proteins/replacement.py)
    motif_guidance: float | None = None  # gamma of motif_method "guided" (pipeline/proteins/motif_guidance.py)
    fix: Any = None  # "A5=W,A9=H", "12=W", or a dict
    forbid: Any = ""  # "C", "C,M" or a list of letters
    allowed: Any = None  # "12=DE,A7=KR" or a dict
    refine: str | os.PathLike | None = None
    start_time: float | None = None
    _spec: ContigSpec | None = field(default=None, init=False, repr=False, compare=False)
    _motif: Motif | None = field(default=None, init=False, repr=False, compare=False)
    _chain: BackboneChain | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)
        check_bool(f"{_NAME}.motif_sequence", self.motif_sequence)
        put("motif_method", check_choice(f"{_NAME}.motif_method", self.motif_method, MOTIF_METHODS))
        if self.motif_guidance is not None:
            if self.motif_method != "guided":
                raise InputError(f"{_NAME}.motif_guidance is the strength of motif_method 'guided'; set motif_method "
                                 f"'guided' or drop it")
            put("motif_guidance", check_float(f"{_NAME}.motif_guidance", self.motif_guidance, minimum=0.0))
        if self.motif is not None and self.refine is not None:
            raise InputError(f"{_NAME}: give motif (scaffolding) or refine (refinement of a chain), not both")
        self._read_motif(put)
        self._read_refine(put)
        fix = assignments(f"{_NAME}.fix", self.fix) if self.fix else {}
        many = next((k for k, v in fix.items() if len(v) != 1), None)
        if many:
            raise InputError(f"{_NAME}.fix: residue {key_text(many)} is given {len(fix[many])} amino acids; fix "
                             "one per residue (A5=W), or give a set in allowed")
        put("fix", {k: v[0] for k, v in fix.items()})
        put("forbid", letters(f"{_NAME}.forbid", self.forbid, "forbid") if self.forbid else ())
        if len(self.forbid) == NUM_AA:
            raise InputError(f"{_NAME}.forbid: all 20 amino acids are forbidden; allow at least one")
        put("allowed", assignments(f"{_NAME}.allowed", self.allowed) if self.allowed else {})
        self._check_residues()

    def _read_motif(self, put: Any) -> None:
        if self.motif is None:
            for k in ("contig", "length"):
                if getattr(self, k) is not None:
                    raise InputError(f"{_NAME}.{k}: a contig places the residues of a motif file; give motif too")
            if self.motif_sequence:
                raise InputError(f"{_NAME}.motif_sequence: keeps the motif's amino acids; give motif and contig")
            return
        path = check_path(f"{_NAME}.motif", self.motif)
        if self.contig is None:
            raise InputError(f"{_NAME}.motif: say where its residues go; give contig too (e.g. '10-40/A3-22/10-40')")
        try:
            if isinstance(self.contig, ContigSpec):
                spec = self.contig if self.length is None else ContigSpec(self.contig.segments, self.length)
            elif isinstance(self.contig, str):
                spec = parse_contig(self.contig, self.length)
            else:
                raise InputError(f"contig must be text such as '10-40/A3-22/10-40' or a ContigSpec, got "
                                 f"{type(self.contig).__name__}")
        except InputError as exc:
            raise InputError(f"{_NAME}.contig: {exc}") from None
        spec = spec.with_motif_sequence() if self.motif_sequence else spec
        put("_spec", spec), put("_motif", read_motif(path, spec, f"{_NAME}.motif")), put("motif", os.fspath(path))

    def _read_refine(self, put: Any) -> None:
        if self.refine is None:
            if self.start_time is not None:
                raise InputError(f"{_NAME}.start_time: refinement starts from a structure; give refine too")
            return
        path = check_path(f"{_NAME}.refine", self.refine)
        if self.start_time is None:
            raise InputError(f"{_NAME}.refine: give start_time too (t0 in (0, 1); 0.6 keeps the fold)")
        t0 = check_float(f"{_NAME}.start_time", self.start_time, 0.0, 1.0, strict_minimum=True)
        if t0 >= 1.0:
            raise InputError(f"{_NAME}.start_time must be in (0, 1) (1 would be the chain itself), got {t0}")
        chains = read_backbones(path, f"{_NAME}.refine")
        if len(chains) != 1:
            raise InputError(f"{_NAME}.refine: {path} holds {len(chains)} protein chains "
                             f"({', '.join(c.chain_id for c in chains)}); give a file with the one chain to refine")
        put("start_time", t0), put("_chain", chains[0]), put("refine", os.fspath(path))

    def _check_residues(self) -> None:
        """Keys with a chain letter name residues of the motif / refined chain; fix and allowed agree."""
        both = sorted(set(self.fix) & set(self.allowed))
        if both:
            raise InputError(f"{_NAME}.allowed: residue {key_text(both[0])} is also fixed; give it in fix or in "
                             "allowed, not both")
        bad = next((k for k, aa in self.fix.items() if aa in self.forbid), None)
        if bad:
            raise InputError(f"{_NAME}.fix: residue {key_text(bad)} is fixed to {self.fix[bad]}, which forbid "
                             "excludes; drop one of them")
        for name, keys in (("fix", self.fix), ("allowed", self.allowed)):
            for key in keys:
                if key[0]:
                    self._file_residue(name, key)
                if key in self.allowed and not set(self.allowed[key]) - set(self.forbid):
                    raise InputError(f"{_NAME}.allowed: residue {key_text(key)} allows only forbidden amino "
                                     "acids; allow at least one other")

    def _file_residue(self, name: str, key: Key) -> int:
        """Index of residue ``key`` (chain, author number) in the motif (contig order) or the refined chain."""
        where = f"{_NAME}.{name}: residue {key_text(key)}"
        if self._motif is not None:
            m = self._motif
            hits = [i for i, (c, r) in enumerate(zip(m.chain_ids, m.res_ids)) if c == key[0] and r == key[1]]
            if not hits:
                raise InputError(f"{where} is not a motif residue (the contig places {self._spec}); name a motif "
                                 "residue, or a designed position as a bare number (12)")
            return hits[0]
        if self._chain is not None:
            c = self._chain
            hits = np.flatnonzero((np.asarray(c.res_ids) == key[1]) & (c.chain_id == key[0]))
            if not hits.size:
                raise InputError(f"{where} is not in the refined chain {c.chain_id} (residues {c.res_ids[0]}-"
                                 f"{c.res_ids[-1]}); name one of its residues, or a designed position (12)")
            return int(hits[0])
        raise InputError(f"{where} names a residue of an input file; give motif or refine, or name a designed "
                         "position as a bare number (12)")

    # ------------------------------------------------------------------------------------------ the run

    @property
    def sets_lengths(self) -> bool:
        """Whether these conditions decide the samples' lengths (contig draws, the refined chain)."""
        return self._motif is not None or self._chain is not None

    def _sequence_field(self) -> str | None:
        """The first field that fixes, forbids or restricts an amino acid (the motif's kept sequence: contig)."""
        kept = self._motif is not None and bool(self._motif.sequence_fixed.any())
        return next((k for k, v in (("fix", self.fix), ("forbid", self.forbid), ("allowed", self.allowed),
                                    ("motif_sequence", self.motif_sequence), ("contig", kept)) if v), None)

    def check_run(self, mode: str, inputs: str | None, lengths_given: bool) -> None:
        """InputError when these conditions cannot hold in a run of ``mode`` with ``inputs`` (sequence_in /
        structure_in, or None) and explicit ``lengths``."""
        what = "motif" if self._motif is not None else "refine" if self._chain is not None else None
        if what and inputs:
            raise InputError(f"{_NAME}.{what} cannot be combined with {inputs} ({what} sets the chains); give one")
        if what and mode not in ("codesign", "structure"):
            raise InputError(f"{_NAME}.{what}: mode {mode!r} does not design; use mode codesign or structure")
        if what and lengths_given:
            raise InputError(f"lengths: {what} sets the chain lengths; leave lengths unset (use the contig and "
                             "its length range)")
        seq = self._sequence_field()
        if seq and mode in ("folding", "structure"):
            raise InputError(f"{_NAME}.{seq}: mode {mode!r} generates no sequence to constrain; use mode "
                             "codesign or inverse_folding")

    def record(self) -> dict[str, Any]:
        """JSON-able description of the fields that are set (the run settings and the manifest hold it); input
        files by path and SHA-256, so a run folder is not resumed with other files."""
        rec: dict[str, Any] = {}
        if self._motif is not None:
            m = self._motif
            rec.update(motif=self.motif, motif_sha256=_sha256(self.motif), contig=self._spec.describe(),
                       motif_residues=[f"{c}{r}" for c, r in zip(m.chain_ids, m.res_ids)],
                       motif_sequence=m.sequence, motif_sequence_fixed=bool(m.sequence_fixed.any()),
                       motif_method=self.motif_method)
            if self.motif_method == "guided":
                rec["motif_guidance"] = self.motif_guidance if self.motif_guidance is not None else DEFAULT_GUIDANCE
        if self._chain is not None:
            rec.update(refine=self.refine, refine_sha256=_sha256(self.refine), start_time=self.start_time)
        if self.fix:
            rec["fix"] = {key_text(k): v for k, v in self.fix.items()}
        if self.forbid:
            rec["forbid"] = "".join(self.forbid)
        if self.allowed:
            rec["allowed"] = {key_text(k): "".join(v) for k, v in self.allowed.items()}
        return rec

    def position(self, key: Key, length: int, placement: MotifPlacement | None) -> int:
        """0-based position of residue ``key`` in a designed chain of ``length`` residues (with ``placement``)."""
        if not key[0]:
            return key[1] - 1
        j = self._file_residue("fix", key)
        return int(np.flatnonzero(placement.motif_index == j)[0]) if placement is not None else j


# ------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class SampleInputs:
    """What the samples of a run are given: ``targets`` (folding / inverse folding), ``conditions`` and, per
    sample index, its motif placement (None without a motif)."""

    targets: Sequence[ProteinTarget] | None
    conditions: ProteinConditions | None = None
    placements: tuple[MotifPlacement | None, ...] = ()

    def conditioning(self, plan: GenerationPlan, idx: list[int], mode: str, device: torch.device) -> Conditioning:
        """The sampler's conditioning of the batch ``idx`` (module docstring)."""
        cond = batch_conditioning(plan, idx, self.targets, mode, torch.device("cpu"))
        c = self.conditions
        if c is None:
            return cond.to(device)
        if c._chain is not None:
            _refine_conditioning(cond, c._chain)
        if c._motif is not None:
            motif_conditioning(cond, [self.placements[i] for i in idx], c.motif_method, c.motif_guidance)
        if c._sequence_field() is not None:
            _sequence_conditioning(cond, c, [plan.lengths[i] for i in idx],
                                   [self.placements[i] if self.placements else None for i in idx])
        return cond.to(device)

    def row(self, i: int) -> dict[str, Any]:
        """Manifest fields of sample ``i``: its contig draw and which designed positions hold which motif residue
        (1-based positions; the motif's CA centroid in the file's frame, subtracted from the motif)."""
        p = self.placements[i] if self.placements else None
        if p is None:
            return {}
        m, fix = self.conditions._motif, {key_text(k): v for k, v in self.conditions.fix.items()}  # type: ignore
        at = np.flatnonzero(p.motif_mask)
        names = [f"{m.chain_ids[j]}{m.res_ids[j]}" for j in p.motif_index[at]]
        placed = [{"position": int(k) + 1, "residue": r, "aa": fix.get(r, indices_to_sequence(m.aatype[j:j + 1])),
                   "sequence_fixed": r in fix or bool(p.sequence_fixed[k])}
                  for k, j, r in zip(at, p.motif_index[at], names)]
        return {"contig": p.draw.to_dict(), "motif_placement": placed,
                "motif_centre": [round(float(v), 4) for v in p.centre]}


def plan_inputs(lengths: Sequence[int], per_length: int, seed: int, targets: Sequence[ProteinTarget] | None,
                conditions: ProteinConditions | None) -> tuple[GenerationPlan, SampleInputs]:
    """The samples of a run and what each is given: ``per_length`` contig draws of the motif (``motif_<i>``, draw
    i seeded by (``seed``, i)), ``per_length`` refinements of the chain (``<chain>_<i>``), else
    :func:`~pipeline.proteins.sampler.plan_samples`. Positions named by the conditions are checked here."""
    c = conditions
    if c is not None and c._motif is not None:
        draws = [c._spec.draw(np.random.default_rng([_DRAWS, seed, i])) for i in range(per_length)]  # type: ignore
        plan = GenerationPlan([f"motif_{i:04d}" for i in range(per_length)], [len(d) for d in draws],
                              [-1] * per_length)
        inputs = SampleInputs(targets, c, tuple(place_motif(c._motif, d) for d in draws))
    elif c is not None and c._chain is not None:
        ch = c._chain
        plan = plan_samples(lengths, per_length, [ProteinTarget(ch.name, ch.sequence, None)])
        inputs = SampleInputs(None, c)
    else:
        plan, inputs = plan_samples(lengths, per_length, targets), SampleInputs(targets, c)
    if c is not None:
        shortest = min(plan.lengths)
        for name in ("fix", "allowed"):
            far = [k for k in getattr(c, name) if not k[0] and k[1] > shortest]
            if far:
                raise InputError(f"{_NAME}.{name}: position {far[0][1]} is beyond the shortest designed chain "
                                 f"({shortest} residues); name positions 1-{shortest}")
    return plan, inputs


# ------------------------------------------------------------------------------------------ conditioning


def motif_conditioning(cond: Conditioning, placements: Sequence[MotifPlacement], method: str,
                       guidance: float | None = None) -> None:
    """The one place where a motif becomes the sampler's conditioning: its frames (centred on its CA centroid) as a
    :class:`~pipeline.proteins.replacement.MotifCondition` of ``method``, its amino acids where they are kept."""
    b, n = cond.res_mask.shape
    trans, rots = torch.zeros(b, n, 3), torch.eye(3).repeat(b, n, 1, 1)  # [B, N, 3], [B, N, 3, 3]
    seq, held, kept = torch.full((b, n), MASK_INDEX), torch.zeros(b, n, dtype=torch.bool), torch.zeros(b, n).bool()
    for i, p in enumerate(placements):
        L = len(p)
        trans[i, :L], rots[i, :L] = torch.from_numpy(p.trans), torch.from_numpy(p.rotmats)
        seq[i, :L], held[i, :L] = torch.from_numpy(p.aatype), torch.from_numpy(p.motif_mask)
        kept[i, :L] = torch.from_numpy(p.sequence_fixed)
    cond.motif = MotifCondition(trans, rots, held, method, guidance)  # type: ignore[arg-type]
    cond.sequence = seq
    cond.fixed_sequence = kept if bool(kept.any()) else None


def _refine_conditioning(cond: Conditioning, chain: BackboneChain) -> None:
    """The refined chain's frames (centred on its CA centroid) and sequence, given to every sample."""
    b, n = cond.res_mask.shape
    x = np.asarray(chain.coords if chain.coords.ndim == 3 else chain.coords[0], dtype=np.float64)
    f = frames_from_atoms(torch.from_numpy(x))
    cond.trans = (f.trans - f.trans.mean(0)).float().expand(b, n, 3).clone()
    cond.rotmats = f.rots.float().expand(b, n, 3, 3).clone()
    cond.sequence = torch.from_numpy(sequence_to_indices(chain.sequence)).expand(b, n).clone()


def _sequence_conditioning(cond: Conditioning, c: ProteinConditions, lengths: list[int],
                           placements: list[MotifPlacement | None]) -> None:
    """Fixed amino acids, and the allowed set per residue (forbid, allowed; residues with a given amino acid keep
    it), of each sample of the batch."""
    b, n = cond.res_mask.shape
    seq = cond.sequence.clone() if cond.sequence is not None else torch.full((b, n), MASK_INDEX)
    fixed = cond.fixed_sequence.clone() if cond.fixed_sequence is not None else torch.zeros(b, n, dtype=torch.bool)
    allowed = torch.ones(b, n, NUM_AA, dtype=torch.bool)
    allowed[..., [RESTYPES.index(a) for a in c.forbid]] = False
    for i, (L, p) in enumerate(zip(lengths, placements)):
        for key, aa in c.fix.items():
            k = c.position(key, L, p)
            seq[i, k], fixed[i, k] = RESTYPES.index(aa), True
        for key, aas in c.allowed.items():
            k = c.position(key, L, p)
            allowed[i, k] = torch.zeros(NUM_AA, dtype=torch.bool)
            allowed[i, k, [RESTYPES.index(a) for a in aas if a not in c.forbid]] = True
    allowed[fixed] = True  # a given amino acid is kept, whatever forbid says
    cond.sequence, cond.fixed_sequence = seq, (fixed if bool(fixed.any()) else None)
    cond.allowed = allowed if not bool(allowed.all()) else None
