"""Discrete state spaces [K]^D: the kinetic-optimal discrete flow matching family (KO = Shaul et al. 2025).

Modules by concept: :mod:`.sources` (p), :mod:`.schedulers` (kappa_t, beta_t), :mod:`.paths` (mixture KO eq. 2,
metric-induced KO eq. 27, per-kind blocks), :mod:`.velocities` (kinetic-optimal fluxes and velocities
KO eq. 16, 26, 29, 35,
75-80), :mod:`.generator` (the CTMC ConditionalGenerator and the exponential step KO Alg. 1),
:mod:`.sampler`, :mod:`.guidance` (predictor guidance, Nisonoff et al. 2024), :mod:`.losses` (KO eq. 11, 36, 37) and :mod:`.oracle` (exact finite-data posteriors).

The names below load their module on first use (PEP 562), so that :mod:`.names` (what configs and the
command line choose from) is importable without torch.
"""
from __future__ import annotations

from manifolds.lazy import lazy_exports


#: public name -> the module that defines it
_WHERE = {
    "Conditioning": "manifolds.discrete.sampler",
    "guided_logits": "manifolds.discrete.guidance",
    "guided_rates": "manifolds.discrete.guidance",
    "combine": "manifolds.discrete.guidance",
    "PresenceGuidance": "manifolds.discrete.guidance",
    "PredictorGuidance": "manifolds.discrete.guidance",
    "Guidance": "manifolds.discrete.guidance",
    "CombinedGuidance": "manifolds.discrete.guidance",
    "BetaScheduler": "manifolds.discrete.schedulers",
    "BlockPath": "manifolds.discrete.paths",
    "DiscreteGenerator": "manifolds.discrete.generator",
    "DiscretePath": "manifolds.discrete.paths",
    "KineticOptimalScheduler": "manifolds.discrete.schedulers",
    "LinearScheduler": "manifolds.discrete.schedulers",
    "MetricPath": "manifolds.discrete.paths",
    "MixturePath": "manifolds.discrete.paths",
    "MixtureScheduler": "manifolds.discrete.schedulers",
    "PolynomialScheduler": "manifolds.discrete.schedulers",
    "RatioPowerBeta": "manifolds.discrete.schedulers",
    "SCHEDULER_NAMES": "manifolds.discrete.names",
    "SchedulerName": "manifolds.discrete.names",
    "SchedulerValues": "manifolds.discrete.schedulers",
    "categorical": "manifolds.discrete.paths",
    "categorical_logits": "manifolds.discrete.paths",
    "corrector_flux": "manifolds.discrete.velocities",
    "cross_entropy": "manifolds.discrete.losses",
    "data_statistics_source": "manifolds.discrete.sources",
    "divergence": "manifolds.discrete.velocities",
    "general_elbo": "manifolds.discrete.losses",
    "general_elbo_integrand": "manifolds.discrete.losses",
    "jump_probs": "manifolds.discrete.generator",
    "jump_step": "manifolds.discrete.generator",
    "kinetic_optimal_flux": "manifolds.discrete.velocities",
    "kinetic_optimal_velocity": "manifolds.discrete.velocities",
    "mask_source": "manifolds.discrete.sources",
    "matching_time": "manifolds.discrete.schedulers",
    "mixture_elbo": "manifolds.discrete.losses",
    "mixture_elbo_integrand": "manifolds.discrete.losses",
    "mixture_marginal_velocity": "manifolds.discrete.velocities",
    "mixture_velocity_column": "manifolds.discrete.velocities",
    "power_weights": "manifolds.discrete.velocities",
    "ring_distance": "manifolds.discrete.paths",
    "sample": "manifolds.discrete.sampler",
    "scheduler_by_name": "manifolds.discrete.schedulers",
    "support_posterior": "manifolds.discrete.generator",
    "tempered": "manifolds.discrete.sampler",
    "token_statistics": "manifolds.discrete.sources",
    "uniform_source": "manifolds.discrete.sources",
    "velocity_column": "manifolds.discrete.velocities",
    "velocity_from_flux": "manifolds.discrete.velocities",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
