"""Motif conditioning by replacement, for any unconditional protein model (issue 24, item 2 (b); docs/conditioning.md,
"Proteins").

A :class:`MotifCondition` gives the motif's frames (CA translations centred on the motif's own CA centroid, and
rotations) at the motif residues of each chain. The sampler (:func:`~pipeline.proteins.sampler.integrate`) moves the
free residues as usual and, after every step, writes the motif residues with :class:`MotifPath`:

* **On the conditional path (GM Prop. 1).** The motif residues are put at a sample of x_t ~ p_t(. | x_1 = motif),
  factor by factor: for translations the Gaussian (CondOT) path, for rotations the rotation generator's path. The
  source x_s of the motif residues is the run's initial state there (for a run from the prior, a prior draw: the
  centred Gaussian restricted to those residues and Haar rotations), and the motif moves on one path sample from it:
  x_t = x_s + f(t) (motif - x_s) with f(t) = (kappa_t - kappa_s) / (1 - kappa_s), the conditional path given x_s
  (kappa_t = t for translations; the geodesic rate for rotations, 1 - exp(-10 t) for MultiFlow's). With s = 0 this is
  (1 - t) x_0 + t x_1, whose law over x_0 is p_t(. | motif) exactly; f is also what the sampler's own Euler steps do
  under a constant prediction, so the motif residues look to the network as free residues with a confident
  prediction. A rotation path without a deterministic coupling (the vMF path of the jump) is drawn afresh each step.
  At t = 1 the motif is written exactly: motif RMSD 0 by construction (after the translation below).
  This is the "fixed motif" replacement guidance of FrameFlow's motif-scaffolding paper (Yim et al. 2024), with the
  motif noised along the model's own path rather than held clean.
* **Centre of mass.** The state is centred (zero CA centroid over the residues, MultiFlow's convention: the network
  only ever saw centred x_t) but the motif is centred on its own centroid, so where it sits inside the chain is
  unknown. Its clean target is placed by the rigid motion that best matches the network's current prediction of the
  motif residues: R motif + o with (R, o) = argmin sum_i |pred_i - (R motif_i + o)|^2 over motif residues i
  (Kabsch; translation only, o = mean_i(pred_i) - mean_i(motif_i), for motifs of fewer than 3 residues), and the
  motif's rotations become R R_i. Fitting the rotation too matters: the network builds the free residues around
  where *it* puts the motif, so a motif kept in its own orientation meets the scaffold at the wrong angle (measured
  in docs/results/proteins.md: junction deviation 2.3 -> 1.2 A). Then the whole state is re-centred (its CA centroid
  subtracted from every residue), so the chain the network sees next is centred again. When the prediction is
  centred and the state consistent this shift is small (the motif's source shares the state's centred noise); it
  moves the free residues and the motif together, so nothing drifts (test: the centroid of every state is 0).
  Before the first prediction o = 0.
* **Hold** (``method="hold"``): the motif written clean (f = 1) from the first step, at the same rigid motion: the
  frames are right but the network sees clean residues at a noisy time. A baseline, and the "wrong time" of the
  oracle test.
* **Guided** (``method="guided"``, issue 24 item 2 (c)): replacement, with the network's prediction of the free
  residues corrected by reconstruction guidance toward a chain in which the network itself predicts the motif
  (:mod:`pipeline.proteins.motif_guidance`; ``guidance`` its strength gamma).
* **Amortised** (``method="amortised"``, issue 24 item 2 (a); FrameFlow's motif scaffolding, Yim et al. 2024) is not
  replacement and does not use :class:`MotifPath`: the motif is held clean where it is given (its CA centroid at the
  origin), the free residues start from N(0, s^2 I) around it, and a network trained with motif masks
  (``motif_input``, :mod:`pipeline.proteins.train.interpolant`) is told which residues are the motif. With the
  exact conditional posterior as the predictor this samples p(free | motif) exactly (oracle test); it needs a model
  trained for it.

Replacement is an approximation: the free residues follow the unconditional posterior given a state whose motif part
is a draw of p_t(. | motif), not the conditional posterior p(free | motif) (the motif's noise is not the one the
free residues were generated with). On the finite-data oracle the measured error is in docs/conditioning.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from manifolds import so3
from manifolds.paths import GeodesicSO3Path
from pipeline.proteins.flow import ProteinFlow, ProteinState, kabsch_rotation
from structures.errors import InputError

__all__ = ["MOTIF_METHODS", "MotifCondition", "MotifMethod", "MotifPath", "fit_motif", "path_fraction"]

MotifMethod = Literal["replacement", "hold", "amortised", "guided"]
MOTIF_METHODS: tuple[str, ...] = ("replacement", "hold", "amortised", "guided")


@dataclass
class MotifCondition:
    """The motif of each chain: frames at the motif residues (values elsewhere are ignored) and the method."""

    trans: Tensor  # [B, N, 3] Angstrom, centred on the motif's CA centroid (MotifPlacement.trans)
    rotmats: Tensor  # [B, N, 3, 3]
    mask: Tensor  # [B, N] bool: motif residues
    method: MotifMethod = "replacement"
    guidance: float | None = None  # gamma (A^2) of method "guided", None: its default (motif_guidance.py)

    @property
    def amortised(self) -> bool:
        """True for the amortised method (the motif held clean at its own centroid; the network is told)."""
        return self.method == "amortised"

    def to(self, device: torch.device) -> MotifCondition:
        """The same motif on ``device``."""
        return replace(self, trans=self.trans.to(device), rotmats=self.rotmats.to(device),
                       mask=self.mask.to(device).bool())

    def check(self, res_mask: Tensor) -> None:
        """InputError (one line) on a method not in :data:`MOTIF_METHODS`, shapes that do not match the batch, or a
        motif residue outside the chain."""
        b, n = res_mask.shape
        if self.method not in MOTIF_METHODS:
            raise InputError(f"unknown motif method {self.method!r}; choose one of {', '.join(MOTIF_METHODS)}")
        if self.mask.shape != (b, n) or self.mask.dtype != torch.bool:
            raise InputError(f"the motif mask must be a [B, N] = [{b}, {n}] bool mask, got {tuple(self.mask.shape)} "
                             f"{self.mask.dtype}; build it like res_mask")
        if self.trans.shape != (b, n, 3) or self.rotmats.shape != (b, n, 3, 3):
            raise InputError(f"the motif frames must be [{b}, {n}, 3] and [{b}, {n}, 3, 3], got "
                             f"{tuple(self.trans.shape)} and {tuple(self.rotmats.shape)}; pad them like res_mask")
        if bool((self.mask & ~res_mask.bool()).any()):
            raise InputError("a motif residue lies on padding (outside its chain); keep the motif mask inside res_mask")
        if self.guidance is not None and (self.method != "guided" or not 0.0 <= self.guidance < float("inf")):
            what = "is only for motif method 'guided'" if self.method != "guided" else "must be a finite number >= 0"
            raise InputError(f"the motif guidance {self.guidance} {what}; drop it or use method 'guided' with a "
                             "strength such as 16")


def path_fraction(kappa: Callable[[Tensor], Tensor], t: float, s: float) -> float:
    """f(t) = (kappa_t - kappa_s) / (1 - kappa_s): the fraction of the way from x_s to x_1 on the conditional path
    given x_s (module docstring); 1 at t = 1 for every rate (the clean motif)."""
    if t >= 1.0:
        return 1.0
    ks, kt = (float(kappa(torch.tensor(float(v), dtype=torch.float64))) for v in (s, t))
    return min(max((kt - ks) / (1.0 - ks), 0.0), 1.0)


class MotifPath:
    """Places the motif residues of a run on their conditional path (module docstring): built once from the run's
    initial state (the motif's source x_s at time s), then :meth:`place` after every step."""

    def __init__(self, flow: ProteinFlow, motif: MotifCondition, res_mask: Tensor, source: ProteinState,
                 s: float) -> None:
        self.flow, self.motif, self.res_mask, self.source, self.s = flow, motif, res_mask.bool(), source, s
        self.rotation_path = flow.generator.components[1].path
        self.offset = torch.zeros_like(source.trans[:, :1])  # [B, 1, 3]
        self.rotation = torch.eye(3, dtype=source.trans.dtype, device=source.trans.device).expand(
            source.trans.shape[0], 3, 3)  # [B, 3, 3]

    def fractions(self, t: float) -> tuple[float, float | None]:
        """(translation f, rotation f or None for a fresh draw of the rotation path) at time t."""
        if self.motif.method == "hold" or t >= 1.0:
            return 1.0, 1.0
        f_trans = path_fraction(lambda u: u, t, self.s)
        if isinstance(self.rotation_path, GeodesicSO3Path):
            return f_trans, path_fraction(lambda u: self.rotation_path.rate(u)[0], t, self.s)
        return f_trans, None

    def match(self, pred_trans: Tensor) -> None:
        """Fit the rigid motion (R, o) that puts the motif's CA on the prediction ``[B, N, 3]`` of the motif residues
        (:func:`fit_motif`)."""
        self.rotation, self.offset = fit_motif(self.motif, pred_trans)

    def place(self, state: ProteinState, t: float, rng: torch.Generator | None = None) -> ProteinState:
        """``state`` with the motif residues on their path at time t (exactly the motif, plus the offset, at t = 1
        or with ``hold``), then re-centred over the residues."""
        mask = self.motif.mask
        f_trans, f_rot = self.fractions(t)
        target = self.motif.trans.to(state.trans) @ self.rotation.transpose(1, 2) + self.offset  # [B, N, 3]
        src = self.source
        trans_m = src.trans + f_trans * (target - src.trans)
        goal = self.rotation[:, None] @ self.motif.rotmats.to(state.rotmats)  # [B, N, 3, 3]
        if f_rot is None:
            rots_m = self.rotation_path.sample(goal, t, rng)
        elif f_rot >= 1.0:
            rots_m = goal
        else:
            rots_m = so3.geodesic(src.rotmats, goal, f_rot)
        trans = torch.where(mask[..., None], trans_m, state.trans)
        rots = torch.where(mask[..., None, None], rots_m, state.rotmats)
        return ProteinState(centred(trans, self.res_mask), rots, state.aatypes)


def fit_motif(motif: MotifCondition, pred_trans: Tensor) -> tuple[Tensor, Tensor]:
    """(R ``[B, 3, 3]``, o ``[B, 1, 3]``): the rigid motion that puts the motif's CA on the prediction ``[B, N, 3]``
    of the motif residues, per chain, R motif_i + o ~ pred_i: Kabsch least squares (module docstring); translation
    only, R = I, for motifs of fewer than 3 residues."""
    m = motif.mask.to(pred_trans.dtype)[..., None]  # [B, N, 1]
    count = m.sum(1, keepdim=True).clamp_min(1.0)  # [B, 1, 1]
    trans = motif.trans.to(pred_trans)
    c_motif = (trans * m).sum(1, keepdim=True) / count  # [B, 1, 3]
    c_pred = (pred_trans * m).sum(1, keepdim=True) / count
    # pred ~ R motif (columns) <=> pred ~ motif R^T (rows); no reflections
    rot = kabsch_rotation(trans - c_motif, pred_trans - c_pred, m[..., 0]).transpose(1, 2)  # [B, 3, 3]
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    rotation = torch.where((count.reshape(-1) >= 3)[:, None, None], rot, eye)
    return rotation, c_pred - c_motif @ rotation.transpose(1, 2)


def centred(trans: Tensor, res_mask: Tensor) -> Tensor:
    """``trans`` ``[B, N, 3]`` minus its CA centroid over the residues of each chain (padding stays as it was)."""
    m = res_mask.to(trans.dtype)[..., None]
    centre = (trans * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
    return torch.where(res_mask[..., None], trans - centre, trans)
