"""Conditional probability paths (GM section 2): Gaussian (R^d), uniform mixture (R^d), SO(3) geodesic, SO(3) vMF."""

from manifolds.paths.gaussian import AffineGaussianPath, CondOTScheduler, AffineScheduler
from manifolds.paths.mixture import UniformMixturePath
from manifolds.paths.so3_geodesic import GeodesicSO3Path, LinearRate, ExpRate
from manifolds.paths.so3_vmf import VMFSO3Path, VMFSchedule

__all__ = ["AffineGaussianPath", "CondOTScheduler", "AffineScheduler", "UniformMixturePath",
           "GeodesicSO3Path", "LinearRate", "ExpRate", "VMFSO3Path", "VMFSchedule"]
