"""In-flight batched FIRE relaxation with CHGNet.

Per step, the structures in the batch (at most ``batch_size``) are converted to CHGNet graphs and
evaluated by ONE forward pass (energy per atom, forces, stress;
:func:`pipeline.crystals.relax.efs.predict_efs` takes forces and stress from one backward pass). Each structure owns an ASE
``FIRE`` optimiser on a ``FrechetCellFilter`` (the same update rule, step-size control and
convergence test as ``chgnet.model.StructOptimizer``); a calculator that serves the precomputed
batch results stands in for ``CHGNetCalculator``. The loop per structure is ASE's ``irun``:
evaluate -> converged? (max filtered force < fmax) -> step limit? -> FIRE step. The filter's
``expm``/``logm``/``expm_frechet`` hooks get the exact near-identity series of
:mod:`pipeline.crystals.relax.cellmath` (scipy's general routines dominate the step cost otherwise).

A structure leaves the batch when it converges, reaches ``max_steps`` or fails (overlapping atoms
on input, graph construction failed, CHGNet raised, non-finite energy/forces/stress); a waiting
structure takes its slot at the next step. One failure never stops the batch.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from pipeline.crystals.relax import cellmath
from pipeline.crystals.relax.efs import predict_efs
from pipeline.crystals.relax.model import DEFAULT_MODEL, STRESS_WEIGHT, load_chgnet, single_threaded_blas
from pipeline.crystals.relax.result import RelaxResult, RelaxStatus

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms
    from chgnet.model import CHGNet
    from pymatgen.core import Structure


def _precomputed_calculator_class():
    from ase.calculators.calculator import Calculator

    class PrecomputedCalculator(Calculator):
        """Serves results computed elsewhere (the batched forward pass) for one exact geometry."""

        implemented_properties = ("energy", "free_energy", "forces", "stress")

        def load(self, atoms: "Atoms", results: dict[str, Any]) -> None:
            self.atoms = atoms.copy()
            self.results = dict(results)

        def calculate(self, atoms=None, properties=None, system_changes=None):  # noqa: ANN001
            raise RuntimeError("batched relaxer: asked for a geometry that was not evaluated")

    return PrecomputedCalculator


def min_interatomic_distance(structure: "Structure") -> float:
    """Smallest periodic distance between two sites (Angstrom); inf for a 1-site cell."""
    n = len(structure)
    if n < 2:
        return float("inf")
    d = np.array(structure.distance_matrix, dtype=float)  # [N, N], minimum-image distances
    d[np.diag_indices(n)] = np.inf
    return float(d.min())


@dataclass
class _Slot:
    index: int
    atoms: "Atoms"
    opt: Any  # ase.optimize.FIRE on the cell filter
    calc: Any
    e_initial: float = float("nan")
    last_good: "Structure | None" = None
    last_e: float = float("nan")
    last_fmax: float = float("nan")


class BatchedRelaxer:
    """Relax many crystals together: one CHGNet forward pass per step over the whole batch.

    Args:
        model: a CHGNet version (:data:`~pipeline.crystals.relax.model.CHGNET_MODELS`) or a loaded ``CHGNet``.
        fmax: force convergence threshold (eV/A) on the filtered forces (atoms and cell).
        max_steps: FIRE step limit per structure (FlowMM: 1,500).
        batch_size: structures evaluated together (in-flight batch).
        relax_cell: relax the cell with ``ase_filter`` (FrechetCellFilter) or only positions.
        min_distance: input structures with two atoms closer than this (Angstrom) fail at once.
        fire_kwargs: extra ``ase.optimize.FIRE`` arguments (dt, maxstep, ...), as StructOptimizer.
    """

    def __init__(self, model: "str | CHGNet" = DEFAULT_MODEL, fmax: float = 0.1, max_steps: int = 1500,
                 batch_size: int = 32, relax_cell: bool = True, ase_filter: str = "FrechetCellFilter",
                 min_distance: float = 0.5, fire_kwargs: dict[str, Any] | None = None):
        if fmax <= 0 or max_steps < 0 or batch_size < 1:
            raise ValueError(f"need fmax > 0, max_steps >= 0, batch_size >= 1 (got {fmax}, {max_steps}, {batch_size})")
        self.model = load_chgnet(model) if isinstance(model, str) else model
        self.fmax, self.max_steps, self.batch_size = float(fmax), int(max_steps), int(batch_size)
        self.relax_cell, self.ase_filter = relax_cell, ase_filter
        self.min_distance = float(min_distance)
        self.fire_kwargs = dict(fire_kwargs or {})
        self._calc_cls = _precomputed_calculator_class()

    # -- public ------------------------------------------------------------------------------
    def relax(self, structures: Sequence["Structure"], progress: bool = True,
              on_result: Callable[[RelaxResult], None] | None = None) -> list[RelaxResult]:
        """Relax ``structures``; results in input order. ``on_result`` sees each as it finishes."""
        results: list[RelaxResult | None] = [None] * len(structures)
        queue = deque(range(len(structures)))
        active: list[_Slot] = []
        bar = tqdm(total=len(structures), desc="relax (batched)", disable=not progress, leave=False)

        def finish(res: RelaxResult) -> None:
            results[res.index] = res
            bar.update(1)
            if on_result is not None:
                on_result(res)

        with single_threaded_blas():
            while queue or active:
                while queue and len(active) < self.batch_size:
                    i = queue.popleft()
                    slot_or_fail = self._admit(i, structures[i])
                    if isinstance(slot_or_fail, RelaxResult):
                        finish(slot_or_fail)
                    else:
                        active.append(slot_or_fail)
                if active:
                    active = self._advance(active, finish)
        bar.close()
        return [r for r in results if r is not None]

    # -- internals ---------------------------------------------------------------------------
    def _admit(self, index: int, structure: "Structure") -> "_Slot | RelaxResult":
        from ase.optimize import FIRE
        from pymatgen.io.ase import AseAtomsAdaptor

        try:
            dmin = min_interatomic_distance(structure)
        except Exception as exc:  # noqa: BLE001 - a broken input fails alone
            return RelaxResult(index, RelaxStatus.FAILED, structure, reason=f"invalid structure: {exc}")
        if dmin < self.min_distance:
            return RelaxResult(index, RelaxStatus.FAILED, structure,
                               reason=f"atoms overlapping: min distance {dmin:.3f} A < {self.min_distance} A")
        atoms = AseAtomsAdaptor.get_atoms(structure)
        calc = self._calc_cls()
        atoms.calc = calc
        target = atoms
        if self.relax_cell:
            from ase import filters

            target = cellmath.install(getattr(filters, self.ase_filter)(atoms))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = FIRE(target, logfile=None, **self.fire_kwargs)
        opt.fmax = self.fmax
        return _Slot(index=index, atoms=atoms, opt=opt, calc=calc)

    def _to_structure(self, atoms: "Atoms") -> "Structure":
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(np.array(atoms.cell.array)), atoms.get_chemical_symbols(),
                         atoms.get_positions(), coords_are_cartesian=True)

    def _graph(self, structure: "Structure") -> Any:
        """CHGNet graph; an atom without neighbours within the cutoff is an error here."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = self.model.graph_converter(structure)
        n_iso = len(structure) - len(np.unique(g.atom_graph[:, 0].numpy())) if len(g.atom_graph) else len(structure)
        if n_iso:
            raise ValueError(f"{n_iso} isolated atom(s): no neighbour within "
                             f"{self.model.graph_converter.atom_graph_cutoff} A")
        return g

    def _predict(self, graphs: list[Any]) -> list[dict[str, np.ndarray] | Exception]:
        """One forward pass over all graphs; if it raises, each graph alone (to isolate the bad one)."""
        try:
            return predict_efs(self.model, graphs)
        except Exception:  # noqa: BLE001
            if len(graphs) == 1:
                try:
                    return predict_efs(self.model, graphs)
                except Exception as exc:  # noqa: BLE001
                    return [exc]
            res: list[dict[str, np.ndarray] | Exception] = []
            for g in graphs:
                res.extend(self._predict([g]))
            return res

    def _advance(self, active: list[_Slot], finish: Callable[[RelaxResult], None]) -> list[_Slot]:
        """Evaluate every active structure in one batch, then one FIRE step each."""
        graphs, ready, structs = [], [], []
        for s in active:
            try:
                st = self._to_structure(s.atoms)
                if not np.all(np.isfinite(st.cart_coords)) or st.volume <= 0:
                    raise ValueError("non-finite positions or cell")
                graphs.append(self._graph(st))
                ready.append(s)
                structs.append(st)
            except Exception as exc:  # noqa: BLE001
                finish(self._failed(s, f"graph construction failed at step {s.opt.nsteps}: {exc}"))
        if not ready:
            return []
        preds = self._predict(graphs)
        keep: list[_Slot] = []
        for s, st, p in zip(ready, structs, preds):
            if isinstance(p, Exception):
                finish(self._failed(s, f"CHGNet failed at step {s.opt.nsteps}: {p}"))
                continue
            e, f, sig = float(p["e"]), p["f"], p["s"]
            if not (np.isfinite(e) and np.all(np.isfinite(f)) and np.all(np.isfinite(sig))):
                finish(self._failed(s, f"NaN energy/forces at step {s.opt.nsteps}"))
                continue
            n = len(s.atoms)
            from ase.stress import full_3x3_to_voigt_6_stress

            s.calc.load(s.atoms, {"energy": e * n, "free_energy": e * n, "forces": np.asarray(f, dtype=float),
                                  "stress": full_3x3_to_voigt_6_stress(np.asarray(sig, dtype=float)) * STRESS_WEIGHT
                                  if np.shape(sig) == (3, 3) else np.asarray(sig, dtype=float) * STRESS_WEIGHT})
            if s.opt.nsteps == 0:
                s.e_initial = e
            s.last_good, s.last_e = st, e
            optimizable = s.opt.optimizable
            grad = optimizable.get_gradient()
            s.last_fmax = float(optimizable.gradient_norm(grad))
            if optimizable.converged(grad, self.fmax):
                finish(self._done(s, RelaxStatus.CONVERGED))
            elif s.opt.nsteps >= self.max_steps:
                finish(self._done(s, RelaxStatus.STEP_LIMIT))
            else:
                try:
                    # FIRE's update direction is -gradient; handing it the filtered forces we
                    # already have saves a second (expm_frechet-heavy) filter evaluation.
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        s.opt.step(-grad)
                    s.opt.nsteps += 1
                    keep.append(s)
                except Exception as exc:  # noqa: BLE001
                    finish(self._failed(s, f"FIRE step failed at step {s.opt.nsteps}: {exc}"))
        return keep

    def _done(self, s: _Slot, status: RelaxStatus) -> RelaxResult:
        return RelaxResult(s.index, status, s.last_good, e_initial=s.e_initial, e_final=s.last_e,
                           n_steps=int(s.opt.nsteps), fmax_final=s.last_fmax)

    def _failed(self, s: _Slot, reason: str) -> RelaxResult:
        return RelaxResult(s.index, RelaxStatus.FAILED, s.last_good, e_initial=s.e_initial, e_final=s.last_e,
                           n_steps=int(s.opt.nsteps), fmax_final=s.last_fmax, reason=reason)
