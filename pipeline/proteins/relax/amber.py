"""All-atom relaxation of one protein chain: PDBFixer builds it, OpenMM minimises it with restraints (AlphaFold2).

The protocol (AlphaFold2's ``relax/amber_minimize.py``; Jumper et al. 2021, supplementary 1.8.6), for a backbone
(N, CA, C, O; O may be missing) whose residue names carry its sequence:

1. **Build** (PDBFixer, Eastman et al. 2017): the missing heavy atoms of every residue (side chains, missing O,
   the C-terminal OXT) from the residue templates (``addMissingAtoms``), then hydrogens at pH 7
   (``addMissingHydrogens``), with fixed seeds (:data:`BUILD_SEED`). The chain is cut into segments where
   consecutive CA atoms are more than 4.2 A apart (the scorer's chain break,
   :mod:`pipeline.proteins.score.geometry`; a segment keeps at least two residues): each segment gets its own
   termini instead of a bond stretched across the gap. No missing residue is modelled.
2. **Force field**: Amber99SB (``amber99sb.xml``, Hornak et al. 2006), in vacuum (``NoCutoff``), bonds to hydrogen
   constrained (``HBonds``).
3. **Restraints**: E_r = sum_i 0.5 k |x_i - x_i^0|^2 over the heavy atoms i, k = ``stiffness`` kcal/mol/A^2
   (10; in OpenMM units k x 418.4 kJ/mol/nm^2), x^0 the positions at the start of the outer iteration.
4. **Minimise**: OpenMM's L-BFGS (``LocalEnergyMinimizer``), tolerance 2.39 kcal/mol = 10 kJ/mol (OpenMM reads
   it as kJ/mol/nm on the RMS force), no iteration limit.
5. **Repeat** while violations remain (:mod:`pipeline.proteins.relax.violations`), at most
   ``max_outer_iterations`` times (3); as AlphaFold2, the residues that violate lose their restraints in the next
   iteration. Unlike AlphaFold2, hydrogens are kept between iterations rather than placed again.

Reported (:class:`~pipeline.proteins.relax.result.ProteinRelaxResult`): the Amber energy (restraints excluded)
per residue, kcal/mol, of the built model and of the relaxed one; heavy-atom clashes and bond violations of both;
the scorer's backbone clash count of the input and of the relaxed backbone; the N, CA, C RMSD of the relaxed
backbone to the input, in the input's frame (no superposition: the restraints keep the frame). Deterministic: the
CPU platform, one thread, deterministic forces, fixed seeds, and OpenMM's Modeller drawing its hydrogens' starting
positions from a private generator (not Python's global one, which other threads, e.g. a dask worker's event loop,
draw from too).
"""

from __future__ import annotations

import io
import random
import threading
from typing import Any

import numpy as np

from pipeline.proteins.relax.config import FORCE_FIELD, KCAL_IN_KJ, KCAL_PER_A2_IN_KJ_PER_NM2, ProteinRelaxConfig
from pipeline.proteins.relax.result import ProteinRelaxResult, ProteinRelaxStatus
from pipeline.proteins.relax.violations import HeavyAtoms, Violations, backbone_clashes, find_violations
from pipeline.proteins.score.geometry import BREAK_CA_CA
from structures.proteins.io import BackboneChain
from structures.proteins.residue_constants import RESTYPE_1TO3, RESTYPES

BACKBONE = ("N", "CA", "C", "O")
BUILD_SEED = 1  # PDBFixer's integrator seed and Python's random seed while building (0 would be a random seed)
RESTRAINT_GROUP = 1  # force group of the restraints (the force field is group 0)
_PLATFORM_PROPERTIES = {"Threads": "1", "DeterministicForces": "true"}
_BUILD_LOCK = threading.Lock()  # one build at a time per process: the build swaps openmm.app.modeller.random


def cpu_platform() -> Any:
    """OpenMM's CPU platform, one thread and deterministic forces by default (also for PDBFixer's contexts)."""
    import openmm

    platform = openmm.Platform.getPlatformByName("CPU")
    for key, value in _PLATFORM_PROPERTIES.items():
        platform.setPropertyDefaultValue(key, value)
    return platform


def sequence_problem(chain: BackboneChain) -> str | None:
    """Residues whose amino acid is unknown (``X``: UNK, structure-only samples), which cannot be built, or None."""
    bad = [i for i, a in enumerate(chain.sequence) if a not in RESTYPES]
    if not bad:
        return None
    shown = ", ".join(f"{chain.res_names[i]} {chain.res_ids[i]}" for i in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (f"unknown residue: {shown}{more} of chain {chain.chain_id} (amino acid unknown); relaxation builds side "
            "chains from the sequence, so give every residue a standard amino acid")


def segment_starts(ca: np.ndarray) -> np.ndarray:
    """[L] bool: residue i starts a new segment (i = 0, or CA(i-1)-CA(i) > 4.2 A; ca [L, 3] Angstrom), except that
    every segment keeps at least two residues: a lone residue between two breaks stays bonded to its next
    neighbour (the last one to its previous), as Amber has no template for a free amino acid."""
    L = len(ca)
    starts = np.zeros(L, bool)
    starts[:1] = True
    if L > 1:
        starts[1:] = np.linalg.norm(ca[1:] - ca[:-1], axis=-1) > BREAK_CA_CA
    bounds = [*np.flatnonzero(starts).tolist(), L]  # segment k is [bounds[k], bounds[k + 1])
    while len(bounds) > 2:
        short = np.flatnonzero(np.diff(bounds) < 2)
        if not len(short):
            break
        k = int(short[0])
        del bounds[k + 1 if k + 2 < len(bounds) else k]  # merge with the next segment, the last with its previous
    starts[:] = False
    starts[bounds[:-1]] = True
    return starts


def backbone_pdb(chain: BackboneChain) -> str:
    """PDB text of the backbone atoms present, residue names from the sequence, a TER record between segments
    (:func:`segment_starts`); the chain's residue numbers and insertion codes where PDB columns can hold them."""
    x = chain.coords if chain.coords.ndim == 3 else chain.coords[0]
    ids = np.asarray(chain.res_ids)
    fits = len(ids) == 0 or (ids.min() >= -999 and ids.max() <= 9999)
    numbers = ids if fits else np.arange(1, len(chain) + 1)
    codes = chain.ins_codes if fits else np.full(len(chain), "")
    starts = segment_starts(x[:, 1])
    lines, serial = [], 1
    for i, aa in enumerate(chain.sequence):
        if starts[i] and i:
            lines.append("TER")
        for k, name in enumerate(BACKBONE):
            if not chain.atom_mask[i, k]:
                continue
            p = x[i, k]
            lines.append(f"ATOM  {serial:5d} {name:<4s} {RESTYPE_1TO3[aa]:>3s} {chain.chain_id[:1] or 'A'}"
                         f"{int(numbers[i]):4d}{(str(codes[i]) or ' ')[:1]}   {p[0]:8.3f}{p[1]:8.3f}{p[2]:8.3f}"
                         f"  1.00  0.00          {name[0]:>2s}")
            serial += 1
    return "\n".join([*lines, "TER", "END"]) + "\n"


def build_model(chain: BackboneChain, ph: float) -> tuple[Any, np.ndarray]:
    """PDBFixer's all-atom model of a backbone: (OpenMM topology, positions [N, 3] in nm)."""
    from openmm import unit
    from openmm.app import modeller

    # OpenMM's Modeller places hydrogens at random starting positions drawn from its module's ``random``: a
    # private generator seeded here, so that another thread drawing from the global one (a dask worker's event
    # loop) changes nothing; the same draws as random.seed(BUILD_SEED) on the global generator
    with _BUILD_LOCK:
        shared = modeller.random
        modeller.random = random.Random(BUILD_SEED)
        try:
            fixer = _fixed(chain, ph)
        finally:
            modeller.random = shared
    xyz = np.asarray(fixer.positions.value_in_unit(unit.nanometer), np.float64)
    return fixer.topology, xyz


def _fixed(chain: BackboneChain, ph: float) -> Any:
    """PDBFixer with the missing atoms and hydrogens of ``chain`` added (its seeds fixed)."""
    from pdbfixer import PDBFixer

    fixer = PDBFixer(pdbfile=io.StringIO(backbone_pdb(chain)), platform=cpu_platform())
    fixer.findMissingResidues()
    fixer.missingResidues = {}  # gaps stay gaps: no loop is modelled
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=BUILD_SEED)  # AlphaFold2 passes 0, which OpenMM reads as "pick a random seed"
    fixer.addMissingHydrogens(ph)
    return fixer


def _heavy_atoms(topology: Any, system: Any, xyz_nm: np.ndarray) -> HeavyAtoms:
    """The heavy atoms of a model with their residues and the force field's heavy-atom bonds (r0 in A)."""
    import openmm

    atoms = list(topology.atoms())
    heavy = np.array([a.element is not None and a.element.symbol != "H" for a in atoms])
    new = -np.ones(len(atoms), int)
    new[heavy] = np.arange(heavy.sum())
    r0: dict[tuple[int, int], float] = {}
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for b in range(force.getNumBonds()):
                i, j, length, _ = force.getBondParameters(b)
                if heavy[i] and heavy[j]:
                    r0[(min(i, j), max(i, j))] = length.value_in_unit(openmm.unit.angstrom)
    pairs = sorted(r0)
    bonds = np.array([[new[i], new[j]] for i, j in pairs], int).reshape(-1, 2)
    return HeavyAtoms(xyz=xyz_nm[heavy] * 10.0, element=np.array([a.element.symbol for a in atoms])[heavy],
                      residue=np.array([a.residue.index for a in atoms])[heavy], bonds=bonds,
                      r0=np.array([r0[p] for p in pairs], float))


def restraint_force(topology: Any, xyz_nm: np.ndarray, stiffness: float, free_residues: set[int]) -> Any:
    """E_r = sum_i 0.5 k_i |x_i - x_i^0|^2 over heavy atoms (k_i = ``stiffness`` kcal/mol/A^2 in kJ/mol/nm^2, 0 on
    the atoms of ``free_residues``), in force group :data:`RESTRAINT_GROUP`."""
    import openmm

    force = openmm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    for name in ("k", "x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    k = stiffness * KCAL_PER_A2_IN_KJ_PER_NM2
    for a in topology.atoms():
        if a.element is not None and a.element.symbol != "H":
            k_i = 0.0 if a.residue.index in free_residues else k
            force.addParticle(a.index, [k_i, *xyz_nm[a.index]])
    force.setForceGroup(RESTRAINT_GROUP)
    return force


def _energy_kcal(context: Any, groups: set[int]) -> float:
    from openmm import unit

    state = context.getState(getEnergy=True, groups=groups)
    return float(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)) / KCAL_IN_KJ


def _backbone_of(topology: Any, xyz_nm: np.ndarray, n_residues: int) -> np.ndarray:
    """[L, 4, 3] N, CA, C, O of a model, Angstrom (NaN where a residue lacks one)."""
    out = np.full((n_residues, 4, 3), np.nan)
    for a in topology.atoms():
        if a.name in BACKBONE:
            out[a.residue.index, BACKBONE.index(a.name)] = xyz_nm[a.index] * 10.0
    return out


class _Minimiser:
    """One OpenMM context of a model: the force field (group 0) plus the restraints (group 1)."""

    def __init__(self, topology: Any, xyz_nm: np.ndarray, stiffness: float) -> None:
        import openmm
        from openmm import app

        self.topology, self.stiffness = topology, stiffness
        self.system = app.ForceField(FORCE_FIELD).createSystem(topology, nonbondedMethod=app.NoCutoff,
                                                               constraints=app.HBonds)
        self.restraints = restraint_force(topology, xyz_nm, stiffness, set())
        self.system.addForce(self.restraints)
        self.context = openmm.Context(self.system, openmm.VerletIntegrator(0.001), cpu_platform(),
                                      dict(_PLATFORM_PROPERTIES))
        self.context.setPositions(xyz_nm)

    def positions(self) -> np.ndarray:
        from openmm import unit

        state = self.context.getState(getPositions=True)
        return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), np.float64)

    def restrain(self, xyz_nm: np.ndarray, free_residues: set[int]) -> None:
        """Restraints to ``xyz_nm``, none on the atoms of ``free_residues``."""
        fresh = restraint_force(self.topology, xyz_nm, self.stiffness, free_residues)
        for n in range(fresh.getNumParticles()):
            self.restraints.setParticleParameters(n, *fresh.getParticleParameters(n))
        self.restraints.updateParametersInContext(self.context)

    def minimise(self, tolerance_kcal: float, max_iterations: int) -> None:
        import openmm

        # OpenMM >= 7.7: kJ/mol/nm on the RMS force; AlphaFold2's 2.39 kcal/mol -> 10 kJ/mol -> 10 kJ/mol/nm
        openmm.LocalEnergyMinimizer.minimize(self.context, tolerance_kcal * KCAL_IN_KJ, max_iterations)

    def violations(self, xyz_nm: np.ndarray) -> Violations:
        return find_violations(_heavy_atoms(self.topology, self.system, xyz_nm))


def _rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean square distance of matching points [..., 3] (Angstrom), NaN-free pairs only."""
    ok = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    return float(np.sqrt(((a[ok] - b[ok]) ** 2).sum(-1).mean())) if ok.any() else float("nan")


def relax_chain(chain: BackboneChain, config: ProteinRelaxConfig) -> ProteinRelaxResult:
    """Build and relax one chain (module docstring). Never raises for a chain that cannot be built or minimised:
    the result is ``failed`` with the reason."""
    x_in = np.asarray(chain.coords if chain.coords.ndim == 3 else chain.coords[0], np.float64)
    L = len(chain)
    mask = np.asarray(chain.atom_mask, bool)
    base = dict(length=L, bb_clashes_before=backbone_clashes(x_in, mask))
    problem = sequence_problem(chain)
    if problem is not None:
        return ProteinRelaxResult(ProteinRelaxStatus.FAILED, reason=problem, **base)
    try:
        topology, xyz = build_model(chain, config.ph)
    except Exception as exc:  # noqa: BLE001 - PDBFixer/OpenMM errors of one chain become its failed row
        return ProteinRelaxResult(ProteinRelaxStatus.FAILED, reason=f"build failed: {_message(exc)}", **base)
    try:
        return _minimise(chain, config, topology, xyz, x_in, mask, base)
    except Exception as exc:  # noqa: BLE001 - e.g. OpenMMException (NaN coordinates), a missing template
        return ProteinRelaxResult(ProteinRelaxStatus.FAILED, reason=f"minimization failed: {_message(exc)}", **base)


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _minimise(chain: BackboneChain, config: ProteinRelaxConfig, topology: Any, xyz: np.ndarray, x_in: np.ndarray,
              mask: np.ndarray, base: dict[str, Any]) -> ProteinRelaxResult:
    """The outer loop of AlphaFold2's ``run_pipeline`` on a built model."""
    L = len(chain)
    m = _Minimiser(topology, xyz, config.stiffness)
    e_before = _energy_kcal(m.context, {0}) / L
    v_before = m.violations(xyz)
    free: set[int] = set()
    v, outer = v_before, 0
    while outer < config.max_outer_iterations:
        m.restrain(xyz, free)
        m.minimise(config.tolerance, config.max_iterations)
        xyz, outer = m.positions(), outer + 1
        if not np.isfinite(xyz).all():
            raise FloatingPointError("non-finite coordinates after minimisation")
        v = m.violations(xyz)
        if not v.total:
            break
        free |= set(v.residues)
    e_after = _energy_kcal(m.context, {0}) / L
    bb = _backbone_of(topology, xyz, L)
    rmsd = _rmsd(bb[:, :3][mask[:, :3]], x_in[:, :3][mask[:, :3]])
    from openmm import app

    pdb = io.StringIO()
    app.PDBFile.writeFile(topology, xyz * 10.0, pdb, keepIds=True)  # plain numbers: Angstrom
    text = "".join(line for line in pdb.getvalue().splitlines(True) if not line.startswith("REMARK   1 CREATED"))
    status = ProteinRelaxStatus.RELAXED if not v.total else ProteinRelaxStatus.VIOLATIONS
    return ProteinRelaxResult(
        status, reason="" if not v.total else f"{v.clashes} clashes and {v.bond_violations} bond violations remain",
        **base, n_atoms=topology.getNumAtoms(), n_segments=int(segment_starts(x_in[:, 1]).sum()),
        energy_before=e_before, energy_after=e_after, clashes_before=v_before.clashes, clashes_after=v.clashes,
        bond_violations_before=v_before.bond_violations, bond_violations_after=v.bond_violations,
        bb_clashes_after=backbone_clashes(np.nan_to_num(bb)), backbone_rmsd=rmsd, outer_iterations=outer,
        n_unrestrained=len(free), pdb=text)  # no dated REMARK: same bytes on every run
