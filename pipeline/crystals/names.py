"""Names that crystal configs and the command line choose from; importable without torch or numpy.

The CHGNet versions are defined once, in :mod:`pipeline.crystals.relax.model` (a torch-free module), and the
mixture schedulers once, in :mod:`manifolds.discrete.names`; they are re-exported here beside the crystal
trainer's choices.
"""

from __future__ import annotations

from manifolds.discrete.names import SCHEDULER_NAMES, SchedulerName
from pipeline.crystals.relax.model import CHGNET_MODELS, DEFAULT_MODEL as DEFAULT_CHGNET

#: training objectives: the cross-entropy KO eq. 11 or minus the mixture-path ELBO integrand KO eq. 37
LOSSES: tuple[str, ...] = ("ce", "elbo")
#: noise path of the fractional coordinates: the mask path like every token, or the metric path KO eq. 27
COORD_PATHS: tuple[str, ...] = ("mask", "metric")
#: learning-rate schedules after the warm-up
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
#: the named hulls of ``score crystals`` (anything else is a file of entries or a PatchedPhaseDiagram pickle)
NAMED_HULLS: tuple[str, ...] = ("none", "default", "mp-elements")

__all__ = ["CHGNET_MODELS", "COORD_PATHS", "DEFAULT_CHGNET", "LOSSES", "LR_SCHEDULES", "NAMED_HULLS",
           "SCHEDULER_NAMES", "SchedulerName"]
