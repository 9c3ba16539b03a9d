"""What a protein sampler run is conditioned on, per residue (docs/conditioning.md, "Proteins"): the twin of
:class:`manifolds.discrete.Conditioning` on the product space R^{3N} x SO(3)^N x [21]^N (GM Prop. 4).

* ``fixed_sequence`` ``[B, N]`` bool: residues whose amino acid is given (``sequence``). They are *revealed tokens*:
  the state holds them from x_0 on, and the predictor sees them. On the KO mask path every token is masked
  independently in training, so such a state is in distribution and the exact posterior of the free positions is
  the conditional one: with an exact posterior the KO sampler draws p(free | given) (oracle test). Forward folding
  is every residue fixed.
* ``fixed_structure`` ``[B, N]`` bool: residues whose frame is given (``trans``, ``rotmats``), held at it. Exact for
  inverse folding (every frame given; the network is told so3_t = r3_t = 1 - min_t). For a subset of residues the
  network sees clean frames at the structure time t of the rest: an approximation (motif replacement, which puts
  them on their conditional path, belongs to the motif machinery).
* ``allowed`` ``[B or 1, N, 20]`` bool: amino acids each residue may take (forbidden = the complement). The sequence
  logits are set to -inf outside the set at every step (and at the landing draw), so the CTMC's rates are
  restricted, not only the final draw. With the KO sampler and an exact posterior this samples q(x | x in S^N)
  exactly when the data law factorises over the restricted positions (oracle test); otherwise it is the
  factorised approximation of guidance by the indicator. With the purity sampler the restricted pi also sets its
  confidence order; nothing about the purity sampler is exact (its unmasking order is a heuristic and it
  re-masks), but no forbidden amino acid is ever drawn and revealed tokens are never re-masked.
* ``motif`` (:class:`~pipeline.proteins.replacement.MotifCondition`): motif frames centred on the motif's own CA
  centroid, a motif mask and a method: ``replacement`` puts the motif residues on their conditional path at every
  step (GM Prop. 1) at the offset the prediction gives them and re-centres the chain; ``hold`` writes them clean
  from the start. Approximate for any model (:mod:`pipeline.proteins.replacement`); the final motif is exact up to
  a translation.
* Refinement (``SamplerConfig.start_time`` t0, RFdiffusion's partial diffusion): x_t0 is drawn from the path's
  conditional p_t0(. | x_1 = given) factor by factor (:func:`refinement_state`), the fixed residues are put back,
  and the sampler runs from t0 to 1; with the exact posterior it samples sum_x p_t0(x | given) p(x_1 | x_t0 = x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from pipeline.proteins.flow import ProteinFlow, ProteinState, centred_gaussian
from pipeline.proteins.names import Mode
from pipeline.proteins.replacement import MotifCondition
from pipeline.proteins.sequence import NUM_AA
from structures.errors import InputError
from structures.proteins.residue_constants import MASK_INDEX

__all__ = ["Conditioning", "check_start_time", "given_state", "refinement_state", "refinement_steps"]


@dataclass
class Conditioning:
    """What a batch is given (module docstring): the residue mask; the given sequence (folding, fixed amino acids,
    refinement) and structure (inverse folding, fixed frames, refinement); which residues hold them; the allowed
    amino acids."""

    res_mask: Tensor  # [B, N] bool
    sequence: Tensor | None = None  # [B, N] long: folding (every residue), fixed_sequence residues, refinement
    trans: Tensor | None = None  # [B, N, 3] Angstrom, centred: inverse folding, fixed_structure residues, refinement
    rotmats: Tensor | None = None  # [B, N, 3, 3]
    fixed_sequence: Tensor | None = None  # [B, N] bool: revealed amino acids
    fixed_structure: Tensor | None = None  # [B, N] bool: held frames
    allowed: Tensor | None = None  # [B or 1, N, 20] bool
    motif: MotifCondition | None = None  # motif frames on their path (replacement) or held clean

    def fixed(self, mode: str) -> tuple[Tensor, Tensor]:
        """(structure fixed, sequence fixed), each ``[B, N]`` bool: padding, what the mode holds, and the residues
        fixed one by one."""
        pad = ~self.res_mask
        structure = pad | (mode == "inverse_folding")
        sequence = pad | (mode in ("folding", "structure"))
        if self.fixed_structure is not None:
            structure = structure | self.fixed_structure
        if self.fixed_sequence is not None:
            sequence = sequence | self.fixed_sequence
        return structure, sequence

    def given(self, mode: str) -> tuple[Tensor, Tensor]:
        """(residues whose frame, residues whose amino acid) is written from the given values: ``[B, N]`` bool."""
        structure, sequence = self.fixed(mode)
        return structure & self.res_mask, sequence & self.res_mask & (mode != "structure")

    def to(self, device: torch.device) -> Conditioning:
        """The same conditioning on ``device`` (the residue mask as bool)."""
        moved = {f.name: (getattr(self, f.name).to(device) if getattr(self, f.name) is not None else None)
                 for f in fields(self)}  # MotifCondition has .to(device) too
        moved["res_mask"] = moved["res_mask"].bool()
        return Conditioning(**moved)

    def check(self, mode: Mode, refine: bool = False) -> None:
        """InputError (one line) when the conditioning cannot be met: missing values, a fixed amino acid outside
        its allowed set, a free residue with no allowed amino acid, shapes that do not match the batch."""
        b, n = self.res_mask.shape
        for name, mask in (("fixed_sequence", self.fixed_sequence), ("fixed_structure", self.fixed_structure)):
            if mask is not None and (mask.shape != (b, n) or mask.dtype != torch.bool):
                raise InputError(f"{name} must be a [B, N] = [{b}, {n}] bool mask, got {tuple(mask.shape)} "
                                 f"{mask.dtype}; build it like res_mask")
        if self.motif is not None:
            self.motif.check(self.res_mask)
            if mode == "inverse_folding" or self.fixed_structure is not None:
                raise InputError("a motif with every frame given (inverse folding) or with fixed_structure; give the "
                                 "held frames as the motif (method 'hold') or drop the motif")
        structure, sequence = self.given(mode)
        if self.fixed_sequence is not None and mode == "structure":
            raise InputError("fixed amino acids with mode 'structure' (the sequence is not generated); "
                             "use mode 'codesign' or 'inverse_folding'")
        if bool(sequence.any()) and self.sequence is None:
            raise InputError(f"mode {mode!r} with fixed residues needs their amino acids; pass the sequence")
        if bool(sequence.any()) and bool((sequence & ((self.sequence < 0) | (self.sequence >= NUM_AA))).any()):
            raise InputError("a fixed residue's amino acid is not one of the 20 (MASK or out of range); "
                             "give indices 0-19 at fixed residues")
        if (bool(structure.any()) or refine) and (self.trans is None or self.rotmats is None):
            what = "refinement" if refine else f"mode {mode!r} with fixed residues"
            raise InputError(f"{what} needs the structure; pass trans and rotmats")
        if self.allowed is None:
            return
        a = self.allowed
        if a.dtype != torch.bool or a.ndim != 3 or a.shape[0] not in (1, b) or a.shape[1:] != (n, NUM_AA):
            raise InputError(f"allowed must be a [B or 1, N, 20] = [{b}, {n}, 20] bool mask, got {tuple(a.shape)} "
                             f"{a.dtype}; one column per amino acid")
        a = a.expand(b, n, NUM_AA)
        empty = self.res_mask & ~sequence & ~a.any(-1)
        if bool(empty.any()):
            i, j = (int(v) for v in empty.nonzero()[0])
            raise InputError(f"residue {j} of sample {i} has no allowed amino acid; allow at least one there")
        if bool(sequence.any()):
            seq = self.sequence.clamp(0, NUM_AA - 1)  # type: ignore[union-attr]
            bad = sequence & ~a.gather(-1, seq[..., None]).squeeze(-1)
            if bool(bad.any()):
                i, j = (int(v) for v in bad.nonzero()[0])
                raise InputError(f"the fixed amino acid of residue {j} of sample {i} is not in its allowed set; "
                                 "allow it or do not fix it")

    def restrict(self, logits: Tensor) -> Tensor:
        """Sequence logits ``[B, N, 21]`` with the amino acids outside ``allowed`` at -inf (the mask column kept)."""
        if self.allowed is None:
            return logits
        out = logits.clone()
        out[..., :NUM_AA] = out[..., :NUM_AA].masked_fill(~self.allowed.to(logits.device), float("-inf"))
        return out

    def hold(self, state: ProteinState, mode: str) -> ProteinState:
        """``state`` with the given values written at the given residues (x_0 or x_t0 of a conditioned run)."""
        structure, sequence = self.given(mode)
        trans, rots, seq = state.trans, state.rotmats, state.aatypes
        if bool(structure.any()):
            trans = torch.where(structure[..., None], self.trans.to(trans), trans)  # type: ignore[union-attr]
            rots = torch.where(structure[..., None, None], self.rotmats.to(rots), rots)  # type: ignore[union-attr]
        if bool(sequence.any()):
            seq = torch.where(sequence, self.sequence.to(seq.device), seq)  # type: ignore[union-attr]
        if mode == "structure":  # the sequence stays masked (a refinement draw may have revealed tokens)
            seq = torch.where(self.res_mask, MASK_INDEX, seq)
        return ProteinState(trans, rots, seq)


def refinement_state(flow: ProteinFlow, given: ProteinState, res_mask: Tensor, t0: float,
                     rng: torch.Generator | None = None) -> ProteinState:
    """x_t0 ~ p_t0(. | x_1 = given), factor by factor (GM Prop. 4), padding as :func:`sample_prior`:

    * translations: the Gaussian path (1 - t0) eps + t0 x_1 with eps the sampler's centred prior (``given.trans``
      centred, as the sampler's structures are);
    * rotations: the path of the flow's rotation generator (the exp-rate geodesic of the flow, the vMF path of the
      jump; the flow's path for the superposition);
    * sequence: the sequence generator's mask path (a MASK in ``given.aatypes`` stays MASK: an absent sequence).
    """
    check_start_time(t0)
    dtype = given.trans.dtype
    eps = centred_gaussian(res_mask, flow.config.trans_scale, rng, dtype)  # [B, N, 3]
    trans = (1.0 - t0) * eps + t0 * given.trans
    rots = flow.generator.components[1].path.sample(given.rotmats, t0, rng)  # [B, N, 3, 3]
    seq = flow.sequence.path.sample(given.aatypes, t0, rng)  # [B, N]
    m = res_mask
    eye = torch.eye(3, dtype=dtype, device=m.device)
    return ProteinState(torch.where(m[..., None], trans, 0.0), torch.where(m[..., None, None], rots, eye),
                        torch.where(m, seq, 0).long())


def check_start_time(t0: float) -> None:
    """InputError unless 0 <= t0 < 1."""
    if not 0.0 <= t0 < 1.0:
        raise InputError(f"start time {t0} is outside [0, 1); pick t0 in [0, 1) (0.6 keeps the fold)")


def refinement_steps(steps: int, t0: float, min_t: float) -> int:
    """Time points on [t0, 1] for a run of ``steps`` points on [min_t, 1]: the same step size, at least 2."""
    full = (steps - 1) / (1.0 - min_t)
    return max(2, math.ceil(full * (1.0 - t0) - 1e-9) + 1)


def given_state(cond: Conditioning) -> ProteinState:
    """The given structure and sequence as a state (MASK where no sequence is given)."""
    seq = cond.sequence if cond.sequence is not None else torch.full(cond.res_mask.shape, MASK_INDEX,
                                                                     device=cond.res_mask.device)
    return ProteinState(cond.trans, cond.rotmats, seq.long())  # type: ignore[arg-type]
