"""Discrete state spaces [K]^D: the kinetic-optimal discrete flow matching family (KO = Shaul et al. 2025).

Modules by concept: :mod:`.sources` (p), :mod:`.schedulers` (kappa_t, beta_t), :mod:`.paths` (mixture KO eq. 2,
metric-induced KO eq. 27, per-kind blocks), :mod:`.velocities` (kinetic-optimal fluxes and velocities
KO eq. 16, 26, 29, 35,
75-80), :mod:`.generator` (the CTMC ConditionalGenerator and the exponential step KO Alg. 1),
:mod:`.sampler`, :mod:`.losses` (KO eq. 11, 36, 37) and :mod:`.oracle` (exact finite-data posteriors).
"""

from manifolds.discrete.generator import DiscreteGenerator, jump_probs, jump_step, support_posterior
from manifolds.discrete.losses import (cross_entropy, general_elbo, general_elbo_integrand, mixture_elbo,
                                       mixture_elbo_integrand)
from manifolds.discrete.paths import (BlockPath, DiscretePath, MetricPath, MixturePath, categorical, categorical_logits,
                                      ring_distance)
from manifolds.discrete.sampler import sample
from manifolds.discrete.schedulers import (SCHEDULER_NAMES, BetaScheduler, KineticOptimalScheduler,
                                           LinearScheduler, MixtureScheduler, PolynomialScheduler, RatioPowerBeta,
                                           SchedulerName, SchedulerValues, matching_time, scheduler_by_name)
from manifolds.discrete.sources import data_statistics_source, mask_source, token_statistics, uniform_source
from manifolds.discrete.velocities import (corrector_flux, divergence, kinetic_optimal_flux,
                                           kinetic_optimal_velocity, mixture_marginal_velocity,
                                           mixture_velocity_column, power_weights, velocity_column,
                                           velocity_from_flux)

__all__ = [
    "SCHEDULER_NAMES", "BetaScheduler", "BlockPath", "DiscreteGenerator", "DiscretePath", "KineticOptimalScheduler",
    "LinearScheduler", "MetricPath", "MixturePath", "MixtureScheduler", "PolynomialScheduler", "RatioPowerBeta",
    "SchedulerName", "SchedulerValues", "categorical", "categorical_logits", "corrector_flux", "cross_entropy",
    "data_statistics_source", "divergence", "general_elbo", "general_elbo_integrand", "jump_probs", "jump_step",
    "kinetic_optimal_flux", "kinetic_optimal_velocity", "mask_source", "matching_time", "mixture_elbo",
    "mixture_elbo_integrand", "mixture_marginal_velocity", "mixture_velocity_column", "power_weights",
    "ring_distance", "sample",
    "scheduler_by_name", "support_posterior", "token_statistics", "uniform_source", "velocity_column",
    "velocity_from_flux",
]
