"""The protein flow shared by sampling (and training): a product generator on R^{3N} x SO(3)^N x [21]^N
(GM Prop. 4), built from :mod:`manifolds`, not hard-wired.

Components (each a :class:`~manifolds.base.ConditionalGenerator`; the network's prediction is the z_hat of each):

* translations - the linear flow of the CondOT path from the centred Gaussian prior x 10 Angstrom (MultiFlow):
  u_t(x | z) = (z - x) / (1 - t) (:class:`~manifolds.generators.FlowGenerator` on
  :class:`~manifolds.paths.AffineGaussianPath`);
* rotations, by :class:`RotationConfig`:

  - ``flow``: the geodesic flow of MultiFlow's exp schedule, R <- R Exp(c h Log(R^T R_hat)), c = 10
    (:class:`ExpGeodesicFlow`). Its Euler step covers the fraction c h of the geodesic; for c h > 1 (T <= 11 at
    c = 10) MultiFlow's step passes the prediction and overshoots. By default the fraction is clamped to 1;
    ``multiflow_exact`` keeps the overshoot.
  - ``jump``: the vMF jump of GM section 9 (closed-form intensity, exact batched target sampler;
    k_min 0.01, k_max 200, alpha 4: :class:`~manifolds.paths.VMFSO3Path`), GM Table 3 "w/ SO(3) jumps";
  - ``superposition``: the Markov superposition (GM Prop. 3) (1 - w) flow + w jump, GM Table 3 "jumps + flow"
    (w = 0.5). As in multijump, the flow is MultiFlow's geodesic flow: with a network both are conditional steps
    toward R_hat (pseudo-marginalisation, GM section 9).
* sequence, by :class:`SequenceConfig`: MultiFlow's purity sampler or the KO mask-path CTMC
  (:mod:`pipeline.proteins.sequence`).

Training draws x_t from the product path of the same flow, :meth:`ProteinFlow.training_path` (:class:`ProteinPath`):
the translations' CondOT path is the very object the translation flow integrates, the sequence's mask path is the
sequence generator's (the KO CTMC on the training scheduler integrates it exactly), and the rotations follow the
geodesic path with kappa_t = t (MultiFlow's training schedule; its sampler traverses the same geodesic toward the
prediction at the exp rate above). :mod:`pipeline.proteins.train.interpolant` supplies the source draw x_0 as a
coupling with the data (centred Gaussian with minibatch OT, IGSO(3) frames, MASK tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from manifolds import so3
from manifolds.base import ConditionalGenerator, TimeLike
from manifolds.discrete import SCHEDULER_NAMES, MixturePath
from manifolds.generators import DensityJumpGenerator, FlowGenerator
from manifolds.paths import AffineGaussianPath, ExpRate, GeodesicSO3Path, LinearRate, VMFSO3Path
from manifolds.paths.so3_vmf import VMFSchedule
from manifolds.product import ProductGenerator
from manifolds.superposition import Superposition, constant_weights
from pipeline.proteins.sequence import MaskedSequence, PuritySequence, SequenceGenerator
from structures.proteins.residue_constants import MASK_INDEX

RotationKind = Literal["flow", "jump", "superposition"]
SequenceKind = Literal["purity", "ko"]
ROTATION_KINDS: tuple[str, ...] = ("flow", "jump", "superposition")
SEQUENCE_KINDS: tuple[str, ...] = ("purity", "ko")

__all__ = ["ROTATION_KINDS", "SEQUENCE_KINDS", "TRAINING_ROTATION_RATE", "ExpGeodesicFlow", "ProteinFlow",
           "ProteinFlowConfig", "ProteinPath", "ProteinState", "RotationConfig", "SequenceConfig", "centred_gaussian",
           "kabsch_rotation", "sample_prior", "update_config"]

#: kappa_t of the rotation path the network is trained on: kappa_t = t (MultiFlow's training schedule "linear")
TRAINING_ROTATION_RATE = LinearRate()


@dataclass(frozen=True)
class RotationConfig:
    """Rotation generator: MultiFlow's exp-schedule geodesic flow, the vMF jump, or their superposition."""

    kind: RotationKind = "flow"
    jump_weight: float = 0.5  # superposition only: w of the jump, 1 - w of the flow (GM Table 3: 0.5)
    exp_rate: float = 10.0
    kappa_min: float = 0.01
    kappa_max: float = 200.0
    kappa_alpha: float = 4.0

    def validate(self) -> None:
        if self.kind not in ROTATION_KINDS:
            raise ValueError(f"unknown rotation generator {self.kind!r}; choose one of {', '.join(ROTATION_KINDS)}")
        if not 0.0 <= self.jump_weight <= 1.0:
            raise ValueError(f"jump_weight must be in [0, 1], got {self.jump_weight}")
        if not (self.exp_rate > 0 and 0 < self.kappa_min < self.kappa_max and self.kappa_alpha > 0):
            raise ValueError("need exp_rate > 0, 0 < kappa_min < kappa_max and kappa_alpha > 0")

    @property
    def weights(self) -> tuple[float, float]:
        """(flow, jump) weights of the generator."""
        return {"flow": (1.0, 0.0), "jump": (0.0, 1.0)}.get(self.kind, (1.0 - self.jump_weight, self.jump_weight))


@dataclass(frozen=True)
class SequenceConfig:
    """Sequence generator: MultiFlow's purity sampler (temperature 0.1, noise 20) or the KO mask CTMC."""

    kind: SequenceKind = "purity"
    temperature: float = 0.1
    noise: float = 20.0  # purity: eta
    scheduler: str = "kinetic_optimal"  # ko: kappa_t
    corrector: float = 0.0  # ko: weight of KO eq. 35

    def validate(self) -> None:
        if self.kind not in SEQUENCE_KINDS:
            raise ValueError(f"unknown sequence generator {self.kind!r}; choose one of {', '.join(SEQUENCE_KINDS)}")
        if self.scheduler not in SCHEDULER_NAMES:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
        if not (self.temperature > 0 and self.noise >= 0 and self.corrector >= 0):
            raise ValueError("need temperature > 0, noise >= 0 and corrector >= 0")


@dataclass(frozen=True)
class ProteinFlowConfig:
    """The product generator's settings; ``multiflow_exact`` reproduces MultiFlow's sampler, quirks included."""

    rotations: RotationConfig = field(default_factory=RotationConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    min_t: float = 0.01
    trans_scale: float = 10.0  # Angstrom: the prior is 10 x a centred standard normal
    multiflow_exact: bool = False

    def validate(self) -> None:
        self.rotations.validate()
        self.sequence.validate()
        if not (0.0 <= self.min_t < 1.0 and self.trans_scale > 0):
            raise ValueError(f"need 0 <= min_t < 1 and trans_scale > 0, got {self.min_t}, {self.trans_scale}")


@dataclass
class ProteinState:
    """A batch of B chains padded to N residues (the state of the product space)."""

    trans: Tensor  # [B, N, 3] Angstrom (CA)
    rotmats: Tensor  # [B, N, 3, 3]
    aatypes: Tensor  # [B, N] long, 20 = MASK

    def as_tuple(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.trans, self.rotmats, self.aatypes

    def keep(self, old: "ProteinState", fixed_structure: Tensor, fixed_sequence: Tensor) -> "ProteinState":
        """Restore ``old`` where fixed (padding, conditioning): masks ``[B, N]`` bool."""
        return ProteinState(torch.where(fixed_structure[..., None], old.trans, self.trans),
                            torch.where(fixed_structure[..., None, None], old.rotmats, self.rotmats),
                            torch.where(fixed_sequence, old.aatypes, self.aatypes))


@dataclass(frozen=True)
class ExpGeodesicFlow(FlowGenerator):
    """MultiFlow's rotation step R Exp(c h Log(R^T R_hat)) (the exp schedule's Euler step); ``overshoot=False``
    clamps the fraction c h of the geodesic at 1, so that a step never passes the prediction."""

    path: GeodesicSO3Path = GeodesicSO3Path(ExpRate(10.0))
    overshoot: bool = False

    def step(self, x: Tensor, t: TimeLike, h: float, z: Tensor,
             rng: torch.Generator | None = None) -> Tensor:
        rate = self.path.rate
        frac = rate.c * h if self.overshoot else min(rate.c * h, 1.0)
        return so3.compose_exp(x, frac * so3.log_between(x, z))  # [B, N, 3, 3]


@dataclass(frozen=True)
class ProteinPath:
    """The conditional product path on R^{3N} x SO(3)^N x [21]^N that the network is trained on (GM Prop. 4: one
    path per factor, drawn independently given (x_0, x_1)); the structure time drives translations and rotations,
    the sequence time the tokens (MultiFlow's separate times).

    * ``trans``: CondOT, x_t = (1 - t) x_0 + t x_1 (GM eq. 3);
    * ``rots``: the geodesic, R_t = R_0 Exp(kappa_t Log(R_0^T R_1));
    * ``sequence``: the mask mixture path, a_t = a_1 with probability kappa_t, else x_0 = MASK (GM eq. 2, KO eq. 2).
    """

    trans: AffineGaussianPath
    rots: GeodesicSO3Path
    sequence: MixturePath

    def sample_from(self, x0: ProteinState, x1: ProteinState, structure_t: Tensor, sequence_t: Tensor,
                    rng: torch.Generator | None = None) -> ProteinState:
        """x_t ~ p_t(. | x_0, x_1), factor by factor; times ``[B]``; only the sequence factor draws from ``rng``
        (one uniform per position). Padding is the caller's to restore."""
        trans = self.trans.sample_from(x0.trans, x1.trans, structure_t)  # [B, N, 3]
        rots = self.rots.sample_from(x0.rotmats, x1.rotmats, structure_t)  # [B, N, 3, 3]
        aatypes = self.sequence.sample_from(x0.aatypes, x1.aatypes, sequence_t, rng)  # [B, N]
        return ProteinState(trans, rots, aatypes)


def rotation_generator(cfg: RotationConfig, exact: bool = False) -> ConditionalGenerator:
    """The rotation component of :class:`RotationConfig` (module docstring)."""
    flow = ExpGeodesicFlow(GeodesicSO3Path(ExpRate(cfg.exp_rate)), overshoot=exact)
    jump = DensityJumpGenerator(VMFSO3Path(VMFSchedule(cfg.kappa_min, cfg.kappa_max, cfg.kappa_alpha)))
    if cfg.kind == "flow":
        return flow
    if cfg.kind == "jump":
        return jump
    return Superposition((flow, jump), constant_weights(*cfg.weights))


def sequence_generator(cfg: SequenceConfig) -> SequenceGenerator:
    """The sequence component of :class:`SequenceConfig`."""
    if cfg.kind == "purity":
        return PuritySequence(cfg.temperature, cfg.noise)
    return MaskedSequence(cfg.scheduler, cfg.corrector, cfg.temperature)


@dataclass(frozen=True)
class ProteinFlow:
    """The product generator (GM Prop. 4) and the settings the sampler loop needs."""

    generator: ProductGenerator
    config: ProteinFlowConfig

    @classmethod
    def build(cls, config: ProteinFlowConfig = ProteinFlowConfig(),
              sequence: SequenceGenerator | None = None) -> "ProteinFlow":
        """From a config; ``sequence`` overrides the sequence component (tests inject one)."""
        config.validate()
        trans = FlowGenerator(AffineGaussianPath(noise_scale=config.trans_scale))
        rots = rotation_generator(config.rotations, config.multiflow_exact)
        seq = sequence if sequence is not None else sequence_generator(config.sequence)
        return cls(ProductGenerator((trans, rots, seq)), config)

    @property
    def sequence(self) -> SequenceGenerator:
        return self.generator.components[2]  # type: ignore[return-value]

    def training_path(self) -> ProteinPath:
        """The product path training samples x_t from (module docstring): this flow's translation path (the object
        its translation flow integrates), the geodesic rotation path with :data:`TRAINING_ROTATION_RATE` and the
        sequence generator's mask path."""
        trans, seq = self.generator.components[0].path, self.sequence.path
        if not isinstance(trans, AffineGaussianPath) or not isinstance(seq, MixturePath):
            raise TypeError("training needs a Gaussian translation path and a mask mixture sequence path")
        return ProteinPath(trans, GeodesicSO3Path(TRAINING_ROTATION_RATE), seq)

    def step(self, state: ProteinState, t: float, h: float, pred: Any,
             rng: torch.Generator | None = None) -> ProteinState:
        """One conditional step of every component toward the prediction (GM Prop. 1 and 4); ``pred`` has
        ``as_tuple()`` = (trans_hat [B, N, 3], rotmats_hat [B, N, 3, 3], logits [B, N, 21])."""
        z = pred.as_tuple() if hasattr(pred, "as_tuple") else tuple(pred)
        return ProteinState(*self.generator.step(state.as_tuple(), t, h, z, rng))


def centred_gaussian(res_mask: Tensor, scale: float, rng: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float32, centred: bool = True) -> Tensor:
    """scale x (eps - masked mean of eps) over the residues of each chain, zero on padding: ``[B, N, 3]``;
    ``centred`` False: scale x eps, N(0, scale^2 I) per residue (the free residues' source of the amortised motif
    method, whose frame is the motif's centroid, not the chain's)."""
    m = res_mask.to(dtype)[..., None]  # [B, N, 1]
    eps = torch.randn(res_mask.shape + (3,), generator=rng, dtype=dtype, device=res_mask.device) * m
    if not centred:
        return scale * eps
    centre = eps.sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)
    return scale * (eps - centre) * m


def sample_prior(res_mask: Tensor, config: ProteinFlowConfig, rng: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, centred: bool = True) -> ProteinState:
    """x_0: centred (``centred`` False: uncentred, :func:`centred_gaussian`) Gaussian translations x
    ``trans_scale``, Haar rotations, all-MASK sequence (padding: 0, identity, token 0)."""
    b, n = res_mask.shape
    trans = centred_gaussian(res_mask, config.trans_scale, rng, dtype, centred)
    rots = so3.uniform((b, n), rng=rng, dtype=dtype, device=res_mask.device)
    eye = torch.eye(3, dtype=dtype, device=res_mask.device)
    rots = torch.where(res_mask[..., None, None], rots, eye)
    aatypes = torch.where(res_mask, MASK_INDEX, 0).long()
    return ProteinState(trans, rots, aatypes)


def update_config(config: ProteinFlowConfig, **changes: object) -> ProteinFlowConfig:
    """``dataclasses.replace`` for nested settings by dotted name: ``rotations.kind="jump"``."""
    top: dict[str, object] = {}
    nested: dict[str, dict[str, object]] = {}
    for k, v in changes.items():
        head, _, rest = k.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = v
        else:
            top[head] = v
    for head, kv in nested.items():
        top[head] = replace(getattr(config, head), **kv)
    return replace(config, **top)


def kabsch_rotation(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Rotation R [..., 3, 3] minimising sum_n m_n |x_n R - y_n|^2 for centred x, y [..., N, 3] (row vectors)."""
    h = (x * mask[..., None]).transpose(-1, -2) @ y  # [..., 3, 3]
    u, _, vh = torch.linalg.svd(h.double())
    d = torch.sign(torch.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return (u @ fix @ vh).to(x.dtype)
