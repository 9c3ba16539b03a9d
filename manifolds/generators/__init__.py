"""Conditional generators (GM section 4-5, Table 1): flows, jumps, diffusions."""

from manifolds.generators.flow import FlowGenerator
from manifolds.generators.jump import DensityJumpGenerator
from manifolds.generators.diffusion import PureDiffusionGenerator

__all__ = ["FlowGenerator", "DensityJumpGenerator", "PureDiffusionGenerator"]
