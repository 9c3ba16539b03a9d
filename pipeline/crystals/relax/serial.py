"""The serial reference: ``chgnet.model.StructOptimizer`` (ASE FIRE + FrechetCellFilter), one
structure at a time, wrapped to return the same :class:`RelaxResult` as the batched relaxer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from tqdm.auto import tqdm

from pipeline.crystals.relax.model import DEFAULT_MODEL, load_chgnet, single_threaded_blas
from pipeline.crystals.relax.result import RelaxResult, RelaxStatus

if TYPE_CHECKING:  # pragma: no cover
    from chgnet.model import CHGNet
    from pymatgen.core import Structure


def relax_serial(structures: Sequence["Structure"], model: "str | CHGNet" = DEFAULT_MODEL,
                 fmax: float = 0.1, max_steps: int = 1500, relax_cell: bool = True,
                 progress: bool = True) -> list[RelaxResult]:
    """Relax each structure with ``StructOptimizer.relax`` (FIRE). Failures are caught per structure.

    BLAS pools are limited to one thread, as in the batched relaxer (see ``single_threaded_blas``),
    so that the two are compared on equal terms."""
    from chgnet.model import StructOptimizer

    m = load_chgnet(model) if isinstance(model, str) else model
    opt = StructOptimizer(model=m, optimizer_class="FIRE")
    out: list[RelaxResult] = []
    with single_threaded_blas():
        for i, st in enumerate(tqdm(structures, desc="relax (serial)", disable=not progress, leave=False)):
            out.append(_relax_one(opt, i, st, fmax, max_steps, relax_cell))
    return out


def _relax_one(opt, i: int, st: "Structure", fmax: float, max_steps: int, relax_cell: bool) -> RelaxResult:  # noqa: ANN001
    try:
        r = opt.relax(st, fmax=fmax, steps=max_steps, relax_cell=relax_cell, verbose=False,
                      assign_magmoms=False)
    except Exception as exc:  # noqa: BLE001
        return RelaxResult(i, RelaxStatus.FAILED, st, reason=f"StructOptimizer failed: {exc}")
    traj = r["trajectory"]
    n = len(st)
    # observers: initial state + one per step, plus the final obs() call of StructOptimizer
    steps = max(0, len(traj.energies) - 2)
    e0, e1 = float(traj.energies[0]) / n, float(traj.energies[-1]) / n
    status = RelaxStatus.CONVERGED if steps < max_steps else RelaxStatus.STEP_LIMIT
    fmax_atoms = float(np.linalg.norm(traj.forces[-1], axis=1).max())
    return RelaxResult(i, status, r["final_structure"], e_initial=e0, e_final=e1, n_steps=steps,
                       fmax_final=fmax_atoms)
