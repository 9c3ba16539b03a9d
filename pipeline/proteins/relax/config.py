"""Settings of the all-atom protein relaxation (AlphaFold2's protocol; Jumper et al. 2021, supplementary 1.8.6).

Torch- and OpenMM-free, so that the command line and configs can be checked before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from structures.validate import check_float, check_int

FORCE_FIELD = "amber99sb.xml"
KCAL_PER_A2_IN_KJ_PER_NM2 = 4.184 * 100.0  # 1 kcal/mol/A^2 = 418.4 kJ/mol/nm^2
KCAL_IN_KJ = 4.184


@dataclass(frozen=True)
class ProteinRelaxConfig:
    """Restrained Amber minimisation settings (AlphaFold2's defaults).

    ``stiffness``: spring constant k of the harmonic restraints on heavy atoms, kcal/mol/A^2; the restraint energy
    is sum_i 0.5 k |x_i - x_i^0|^2 over the restrained heavy atoms (0: unrestrained). ``tolerance``: L-BFGS
    tolerance, kcal/mol (AlphaFold2's 2.39 kcal/mol = 10 kJ/mol; OpenMM >= 7.7 reads it as kJ/mol/nm on the
    root-mean-square force, so 10 kJ/mol/nm is what the minimiser gets). ``max_iterations``: L-BFGS iterations per
    outer iteration (0: no limit). ``max_outer_iterations``: minimisations at most, repeated while violations
    remain (:mod:`pipeline.proteins.relax.violations`). ``ph``: protonation of the added hydrogens.
    ``workers``: local processes (results do not depend on it, so it does not key the run folder).
    """

    stiffness: float = 10.0
    tolerance: float = 2.39
    max_iterations: int = 0
    max_outer_iterations: int = 3
    ph: float = 7.0
    workers: int = 1

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "stiffness", check_float(f"{name}.stiffness", self.stiffness, 0.0))
        object.__setattr__(self, "tolerance", check_float(f"{name}.tolerance", self.tolerance, 0.0,
                                                          strict_minimum=True))
        check_int(f"{name}.max_iterations", self.max_iterations, minimum=0)
        check_int(f"{name}.max_outer_iterations", self.max_outer_iterations, minimum=1)
        object.__setattr__(self, "ph", check_float(f"{name}.ph", self.ph, 0.0, 14.0))
        check_int(f"{name}.workers", self.workers, minimum=1)

    def run_settings(self) -> dict[str, Any]:
        """What a run folder is keyed by and ``relax_summary.json`` reports (everything but ``workers``)."""
        return {"force_field": FORCE_FIELD, "stiffness": self.stiffness, "tolerance": self.tolerance,
                "max_iterations": self.max_iterations, "max_outer_iterations": self.max_outer_iterations,
                "ph": self.ph}
