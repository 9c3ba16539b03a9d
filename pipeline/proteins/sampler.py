"""The protein sampler: "predict z_hat with the network, take a conditional step" (GM Prop. 1) on the product space
of :mod:`pipeline.proteins.flow` (GM Prop. 4), with self-conditioning.

Time grid: ``steps`` points t_k = linspace(min_t, 1, steps) (MultiFlow's ``num_timesteps``; min_t = 0.01), so a run
makes ``steps`` network calls: one before each of the ``steps - 1`` conditional steps, and a final call at t = 1 on
the last state. The final step *lands every component on that last prediction*: the structure is the predicted
frames, the sequence the generator's landing draw (:meth:`~pipeline.proteins.sequence.SequenceGenerator.land`), so no
token is masked at t = 1 for any scheduler.

Modes (:data:`MODES`):

* ``codesign`` - structure and sequence generated (unconditional);
* ``structure`` - structure only (GM Table 3 "unimodal"): the sequence stays masked at cat_t = min_t; the files
  carry the network's final argmax guess;
* ``folding`` - forward folding: the sequence is given (cat_t = 1 - min_t, self-conditioned on its one-hot);
* ``inverse_folding`` - the structure is given (so3_t = r3_t = 1 - min_t); the sequence is generated.

Per-residue conditions (fixed amino acids, fixed frames, allowed amino acids, a motif placed by replacement) and
refinement from a start time t0 are :class:`~pipeline.proteins.conditioning.Conditioning` and
``SamplerConfig.start_time`` (:mod:`pipeline.proteins.conditioning` says what is exact;
:mod:`pipeline.proteins.replacement` the motif).

MultiFlow-exact mode (``ProteinFlowConfig.multiflow_exact``) reproduces MultiFlow's ``Interpolant.sample`` with its
quirks: the final call is made at the previous call's time and sees the sequence from before the last sequence
step (a misspelt batch key); the rotation step may overshoot the prediction. The default fixes these: the final
call is at t = 1 with the current sequence, and a rotation step never passes the prediction.

Batches hold chains of mixed lengths, padded, with a residue mask: padded positions are held fixed and masked out of
the network, and every random draw comes from the batch's own generator. A run's samples are planned by
:func:`plan_samples` (ids, lengths, the given sequence / structure of each), batched by a residue budget
(:meth:`GenerationPlan.batches`), seeded per batch (:func:`batch_seed`) and conditioned by
:func:`batch_conditioning`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from manifolds.samplers import time_grid
from pipeline.proteins.network import ProteinNetwork, ProteinNetworkInput
from pipeline.proteins.conditioning import (Conditioning, check_start_time, given_state, refinement_state,
                                           refinement_steps)
from pipeline.proteins.flow import ProteinFlow, ProteinFlowConfig, ProteinState, sample_prior
from pipeline.proteins.names import MODES, PRECISIONS, Mode
from pipeline.proteins.motif_guidance import DEFAULT_GUIDANCE, guided_prediction
from pipeline.proteins.replacement import MotifPath
from pipeline.proteins.model_checks import require_motif_input
from structures.errors import InputError
from structures.ids import safe_id
from structures.proteins.frames import Frames, backbone_from_frames
from structures.proteins.residue_constants import MASK_INDEX, NUM_TOKENS, sequence_to_indices

__all__ = ["MODES", "Conditioning", "GenerationPlan", "NetworkPredictor", "Prediction", "ProteinTarget", "SampleResult",
           "SamplerConfig", "backbone_atoms", "batch_conditioning", "batch_seed", "integrate", "plan_samples",
           "sample_proteins"]


@dataclass(frozen=True)
class SamplerConfig:
    """Sampler settings: MultiFlow's inference defaults (500 time points, self-conditioning, co-design)."""

    steps: int = 500  # time points = network calls (MultiFlow's num_timesteps)
    flow: ProteinFlowConfig = field(default_factory=ProteinFlowConfig)
    mode: Mode = "codesign"
    self_condition: bool = True
    precision: str = "fp32"  # "bf16": network calls under bfloat16 autocast (frames, IPA attention, outputs fp32)
    start_time: float | None = None  # refinement: start at t0 from the given structure noised to t0 (None: min_t)

    def validate(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.steps < 2:
            raise ValueError(f"steps must be >= 2 (time points from min_t to 1), got {self.steps}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.start_time is not None:
            check_start_time(self.start_time)
        self.flow.validate()

    def grid(self) -> list[float]:
        """The ``steps`` time points linspace(min_t, 1, steps) (float64, the last exactly 1); from ``start_time``
        t0, :func:`~pipeline.proteins.conditioning.refinement_steps` points on [t0, 1] (a full run's step size)."""
        if self.start_time is None:
            return time_grid(self.steps - 1, self.flow.min_t, 1.0)
        n = refinement_steps(self.steps, self.start_time, self.flow.min_t)
        return time_grid(n - 1, self.start_time, 1.0)


@dataclass
class Prediction:
    """The network's z_hat: clean frames and amino-acid logits."""

    trans: Tensor  # [B, N, 3]
    rotmats: Tensor  # [B, N, 3, 3]
    logits: Tensor  # [B, N, 21]

    def as_tuple(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.trans, self.rotmats, self.logits


#: ``predict(state, t) -> Prediction``: a network with its self-conditioning, or an exact oracle (tests)
Predictor = Callable[[ProteinState, float], Prediction]


class NetworkPredictor:
    """The network as a predictor: per-mode time inputs and self-conditioning (MultiFlow's sampler)."""

    def __init__(self, net: ProteinNetwork, cond: Conditioning, config: SamplerConfig, flow: ProteinFlow,
                 keep_history: bool = False) -> None:
        self.net, self.cond, self.config, self.flow = net, cond, config, flow
        self.trans_sc: Tensor | None = None  # [B, N, 3]
        self.aatypes_sc: Tensor | None = None  # [B, N, 21]
        self.history: list[tuple[ProteinNetworkInput, Prediction]] | None = [] if keep_history else None

    def times(self, t: float, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(so3_t, r3_t, cat_t), each ``[B]``, for the mode (MultiFlow's ``separate_t``)."""
        mode, hi, lo = self.config.mode, 1.0 - self.config.flow.min_t, self.config.flow.min_t
        b = like.shape[0]
        full = torch.full((b,), t, dtype=like.dtype, device=like.device)
        struct = full.new_full((b,), hi) if mode == "inverse_folding" else full
        if mode == "folding":
            cat = full.new_full((b,), hi)
        elif mode == "structure":
            cat = full.new_full((b,), lo)
        else:
            cat = self.flow.sequence.network_time(full)
        return struct, struct.clone(), cat

    def __call__(self, state: ProteinState, t: float) -> Prediction:
        """z_hat at (state, t); differentiable in the translations when ``state.trans`` requires grad (motif
        guidance, :mod:`pipeline.proteins.motif_guidance`), else run without autograd."""
        so3_t, r3_t, cat_t = self.times(t, state.trans)
        motif = self.cond.motif
        inp = ProteinNetworkInput(trans=state.trans, rotmats=state.rotmats, aatypes=state.aatypes,
                                  res_mask=self.cond.res_mask, so3_t=so3_t, r3_t=r3_t, cat_t=cat_t,
                                  trans_sc=self.trans_sc, aatypes_sc=self.aatypes_sc,
                                  motif_mask=motif.mask if motif is not None and motif.amortised else None)
        with torch.set_grad_enabled(state.trans.requires_grad):
            out = self.net.predict(inp, bf16=self.config.precision == "bf16")
        dtype = state.trans.dtype
        pred = Prediction(out.pred_trans.to(dtype), out.pred_rotmats.to(dtype), out.pred_logits.to(dtype))
        self.self_condition_on(pred, state)
        if self.history is not None:
            self.history.append((inp, pred))
        return pred

    def self_condition_on(self, pred: Prediction, state: ProteinState) -> None:
        """Keep ``pred`` (detached) as the next call's self-conditioning input (held frames: the state's)."""
        if not self.config.self_condition:
            return
        fixed_structure, _ = held(self.cond, self.config.mode)
        self.trans_sc = torch.where(fixed_structure[..., None], state.trans, pred.trans).detach()
        if self.config.mode == "folding":
            self.aatypes_sc = torch.nn.functional.one_hot(state.aatypes, NUM_TOKENS).to(pred.trans.dtype)
        else:
            self.aatypes_sc = pred.logits.detach()


@dataclass
class SampleResult:
    """Final samples (structure = the last prediction, sequence landed) and, optionally, the trajectory."""

    state: ProteinState  # [B, N, ...]
    res_mask: Tensor  # [B, N] bool
    trajectory: list[ProteinState] | None = None  # states x_0 .. x_{T-1} (CPU), then the final sample


def _cpu(state: ProteinState) -> ProteinState:
    return ProteinState(*(x.detach().cpu() for x in state.as_tuple()))


def integrate(flow: ProteinFlow, predict: Predictor, state: ProteinState, cond: Conditioning, config: SamplerConfig,
              rng: torch.Generator | None = None, trajectory: bool = False) -> SampleResult:
    """Run the sampler loop from ``state`` (x at grid[0]) and land on the final prediction (module docstring).
    The sequence logits are restricted to ``cond.allowed`` at every step and at the landing draw. With
    ``cond.motif`` the motif residues are placed after every step and at the landing
    (:class:`~pipeline.proteins.replacement.MotifPath`, from ``state`` as the motif's source at grid[0])."""
    grid = config.grid()
    cond.check(config.mode, config.start_time is not None)
    fixed_structure, fixed_sequence = held(cond, config.mode)
    replaced = cond.motif is not None and not cond.motif.amortised
    motif = MotifPath(flow, cond.motif, cond.res_mask, state, grid[0]) if replaced else None
    if motif is not None:
        state = motif.place(state, grid[0], rng)
    elif cond.motif is not None:  # amortised: the motif held clean at its own centroid
        m = cond.motif.mask
        state = replace(state, trans=torch.where(m[..., None], cond.motif.trans.to(state.trans), state.trans),
                        rotmats=torch.where(m[..., None, None], cond.motif.rotmats.to(state.rotmats), state.rotmats))
    traj = [_cpu(state)] if trajectory else None
    before_last = state.aatypes
    for k in range(len(grid) - 1):
        t, h = grid[k], grid[k + 1] - grid[k]
        pred = _restricted(_predict(predict, state, t, cond), cond)
        before_last = state.aatypes
        state = flow.step(state, t, h, pred, rng).keep(state, fixed_structure, fixed_sequence)
        if motif is not None:
            motif.match(pred.trans)
            state = motif.place(state, grid[k + 1], rng)
        if traj is not None:
            traj.append(_cpu(state))
    if flow.config.multiflow_exact:  # MultiFlow's final call: at the previous time, with the previous sequence
        pred = _predict(predict, replace(state, aatypes=before_last), grid[-2], cond)
    else:
        pred = _predict(predict, state, grid[-1], cond)
    pred = _restricted(pred, cond)
    if config.mode == "structure":
        seq = pred.logits[..., :MASK_INDEX].argmax(-1)
    else:
        seq = flow.sequence.land(pred.logits, rng)
    keep_sequence = ~cond.res_mask if config.mode == "structure" else fixed_sequence
    landed = ProteinState(pred.trans, pred.rotmats, seq).keep(state, fixed_structure, keep_sequence)
    if motif is not None:
        motif.match(pred.trans)
        landed = motif.place(landed, 1.0, rng)
    if traj is not None:
        traj.append(_cpu(landed))
    return SampleResult(landed, cond.res_mask, traj)


def held(cond: Conditioning, mode: str) -> tuple[Tensor, Tensor]:
    """(structure held, sequence held), each ``[B, N]`` bool: :meth:`Conditioning.fixed`, and the motif residues of
    the amortised method."""
    structure, sequence = cond.fixed(mode)
    if cond.motif is not None and cond.motif.amortised:
        structure = structure | cond.motif.mask
    return structure, sequence


def _predict(predict: Predictor, state: ProteinState, t: float, cond: Conditioning) -> Prediction:
    """``predict(state, t)``, guided toward the motif for the motif method ``guided``
    (:func:`~pipeline.proteins.motif_guidance.guided_prediction`)."""
    motif = cond.motif
    if motif is None or motif.method != "guided":
        return predict(state, t)
    gamma = DEFAULT_GUIDANCE if motif.guidance is None else motif.guidance
    return guided_prediction(predict, state, t, motif, cond.res_mask, gamma)


def _restricted(pred: Prediction, cond: Conditioning) -> Prediction:
    """The prediction with its sequence logits restricted to the allowed amino acids (unchanged without a set)."""
    return pred if cond.allowed is None else Prediction(pred.trans, pred.rotmats, cond.restrict(pred.logits))


def initial_state(cond: Conditioning, config: SamplerConfig, rng: torch.Generator | None, dtype: torch.dtype,
                  flow: ProteinFlow | None = None) -> ProteinState:
    """x at the grid's first time: the prior (or, refining from ``config.start_time`` t0, the given structure and
    sequence noised to t0 along ``flow``'s paths, :func:`~pipeline.proteins.conditioning.refinement_state`), with
    the given values written at the given residues (the whole sequence for folding, the whole structure for inverse
    folding, the residues fixed one by one)."""
    config.validate()
    refine = config.start_time is not None
    cond.check(config.mode, refine)
    if refine:
        flow = flow if flow is not None else ProteinFlow.build(config.flow)
        given = given_state(cond)
        given = ProteinState(given.trans.to(dtype), given.rotmats.to(dtype), given.aatypes)
        state = refinement_state(flow, given, cond.res_mask, float(config.start_time), rng)
    else:
        amortised = cond.motif is not None and cond.motif.amortised  # free residues' source N(0, s^2 I), not centred
        state = sample_prior(cond.res_mask, config.flow, rng, dtype, centred=not amortised)
    return cond.hold(state, config.mode)


def sample_proteins(net: ProteinNetwork, cond: Conditioning, config: SamplerConfig = SamplerConfig(),
                    rng: torch.Generator | None = None, prior: ProteinState | None = None,
                    trajectory: bool = False) -> SampleResult:
    """Sample one batch with the network (in its dtype, on its device). ``prior`` replaces the draw of x_0."""
    config.validate()
    if cond.motif is not None and cond.motif.amortised:
        require_motif_input(net.cfg, "motif method")
    flow = ProteinFlow.build(config.flow)
    cond = cond.to(net.device)
    dtype = torch.promote_types(net.dtype, torch.float32)
    state = prior if prior is not None else initial_state(cond, config, rng, dtype, flow)
    predictor = NetworkPredictor(net, cond, config, flow)
    return integrate(flow, predictor, state, cond, config, rng, trajectory)


# ------------------------------------------------------------------------------------ the batches of a run


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


def plan_samples(lengths: Sequence[int], per_length: int, targets: Sequence[ProteinTarget] | None) -> GenerationPlan:
    """The samples of a run: ``length_<L>_<i>`` per length, or ``<target>_<i>`` per target (``per_length`` each).

    Ids name output files (``pdb/<id>.pdb``), so a target's name (a FASTA header, a dict key or chain name given in
    Python) enters them as :func:`structures.ids.safe_id` of it: a name holding ``/`` or ``..`` stays inside OUT."""
    ids, sizes, tix = [], [], []
    for k, (name, length) in enumerate([(safe_id(t.name), len(t.sequence)) for t in targets] if targets else
                                       [(f"length_{n}", n) for n in lengths]):
        for i in range(per_length):
            ids.append(f"{name}_{i:04d}")
            sizes.append(length)
            tix.append(k if targets else -1)
    if len(set(ids)) != len(ids):
        raise InputError("sample ids are not unique (two inputs with the same name?); rename the inputs")
    return GenerationPlan(ids, sizes, tix)


def batch_seed(seed: int, k: int) -> int:
    """The seed of batch k (independent of batching history and thread counts)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def batch_conditioning(plan: GenerationPlan, idx: list[int], targets: Sequence[ProteinTarget] | None, mode: str,
                       device: torch.device) -> Conditioning:
    """Padded residue mask, and the given sequences / frames (centred on the CA centroid) of a batch."""
    n = max(plan.lengths[i] for i in idx)
    mask = torch.zeros(len(idx), n, dtype=torch.bool)  # [B, N]
    for b, i in enumerate(idx):
        mask[b, : plan.lengths[i]] = True
    cond = Conditioning(mask.to(device))
    if mode == "folding":
        seq = torch.zeros(len(idx), n, dtype=torch.long)  # [B, N]
        for b, i in enumerate(idx):
            seq[b, : plan.lengths[i]] = torch.from_numpy(sequence_to_indices(targets[plan.targets[i]].sequence))
        cond.sequence = seq.to(device)
    if mode == "inverse_folding":
        from structures.proteins.frames import frames_from_atoms

        trans, rots = torch.zeros(len(idx), n, 3), torch.eye(3).repeat(len(idx), n, 1, 1)  # [B, N, 3], [B, N, 3, 3]
        for b, i in enumerate(idx):
            x = torch.from_numpy(np.asarray(targets[plan.targets[i]].coords, dtype=np.float64))
            f = frames_from_atoms(x)
            trans[b, : len(x)] = (f.trans - f.trans.mean(0)).float()
            rots[b, : len(x)] = f.rots.float()
        cond.trans, cond.rotmats = trans.to(device), rots.to(device)
    return cond


def backbone_atoms(state: ProteinState, mask: torch.Tensor) -> np.ndarray:
    """Idealised N, CA, C, O ``[..., L, 4, 3]`` (numpy float64) of frames."""
    frames = Frames(state.rotmats.double().cpu(), state.trans.double().cpu())
    return backbone_from_frames(frames, mask=mask.cpu()).numpy()
