"""Checks that a crystal input is a complete, physical structure, before any work is spent on it.

Each check returns ``None`` when the input is fine, else one line saying what is wrong (the caller
adds where). They never raise on bad input: a batch records the reason per structure and goes on.

* :func:`cif_text_problem`: the raw CIF text — finite, positive cell lengths and angles in
  (0, 180) as written (pymatgen silently takes ``|a|`` of a negative length), and, when the file
  states its formula, the parsed sites must add up to it (a file cut after a whole atom row loses
  its last atoms without a parse error): ``_chemical_formula_sum``, else ``_chemical_formula_structural``
  times ``_cell_formula_units_Z`` (or only its proportions without Z). A CIF that states neither
  cannot be told from a whole one when it is cut between rows.
* :func:`structure_problem`: a parsed structure — at least one site, a finite lattice with
  positive volume, finite coordinates, ordered sites of real elements, optionally Z <= ``max_z``.
* :func:`cif_roundtrip_problem`: a CIF text written for a structure of ``n`` sites must read back with ``n``
  sites (two atoms on one site do not).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Composition, Structure

_CELL = re.compile(r"^\s*_cell_(length_[abc]|angle_(?:alpha|beta|gamma))\s+(\S+)", re.MULTILINE)
_FORMULA_SUM = re.compile(r"^\s*_chemical_formula_sum\s+(?:'([^']*)'|\"([^\"]*)\"|(\S+))", re.MULTILINE)
_FORMULA_STRUCTURAL = re.compile(r"^\s*_chemical_formula_structural\s+(?:'([^']*)'|\"([^\"]*)\"|(\S+))",
                                 re.MULTILINE)
_FORMULA_UNITS = re.compile(r"^\s*_cell_formula_units_Z\s+(\S+)", re.MULTILINE)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _cif_float(text: str) -> float:
    """A CIF number, without its standard uncertainty ``1.234(5)``; NaN when not a number."""
    m = _NUMBER.match(text)
    return float(m.group(0)) if m else float("nan")


def cif_text_problem(text: str) -> str | None:
    """What is wrong with the cell parameters written in a CIF text, or None."""
    cell = {k: _cif_float(v) for k, v in _CELL.findall(text)}
    for axis in "abc":
        v = cell.get(f"length_{axis}")
        if v is None:
            return f"no _cell_length_{axis} (incomplete CIF)"
        if not (math.isfinite(v) and v > 0):
            return f"cell length {axis} = {v} is not a finite positive number"
    for name in ("alpha", "beta", "gamma"):
        v = cell.get(f"angle_{name}")
        if v is None:
            return f"no _cell_angle_{name} (incomplete CIF)"
        if not (math.isfinite(v) and 0 < v < 180):
            return f"cell angle {name} = {v} is not in (0, 180) degrees"
    return None


def _stated_formula(text: str) -> tuple[str, "Composition", bool] | None:
    """The formula a CIF states for its cell: (as written, composition, whether it counts the whole cell);
    ``_chemical_formula_sum`` first, else ``_chemical_formula_structural`` (times ``_cell_formula_units_Z``
    when given). None when it states none that pymatgen can read (a formula is only a comment, not our input)."""
    from pymatgen.core import Composition

    m = _FORMULA_SUM.search(text)
    units = None
    if not m:
        m = _FORMULA_STRUCTURAL.search(text)
        z = _FORMULA_UNITS.search(text)
        units = _cif_float(z.group(1)) if z else float("nan")
        if not m:
            return None
    stated = next(g for g in m.groups() if g is not None)
    try:
        want = Composition(stated)
    except Exception:  # noqa: BLE001 - an unparseable formula is only a comment
        return None
    if units is None:
        return stated, want, True
    whole = math.isfinite(units) and units >= 1 and float(units).is_integer()
    return (f"{stated} x Z={int(units)}" if whole else stated), (want * int(units) if whole else want), whole


def formula_problem(text: str, structure: "Structure") -> str | None:
    """When the CIF states its formula (:func:`_stated_formula`), does the parsed structure match it?"""
    stated_formula = _stated_formula(text)
    if stated_formula is None:
        return None
    stated, want, whole = stated_formula
    have = structure.composition
    if not whole:  # proportions only
        if want.reduced_composition != have.reduced_composition:
            return (f"the CIF states {stated!r} but its atom sites give {have.formula!r} "
                    "(truncated or incomplete file)")
        return None
    if want.reduced_composition != have.reduced_composition or have.num_atoms + 1e-6 < want.num_atoms:
        return (f"the CIF states {stated!r} but its atom sites give {have.formula!r} "
                "(truncated or incomplete file)")
    return None


def structure_problem(structure: "Structure", max_z: int | None = None) -> str | None:
    """What makes ``structure`` unusable as a crystal, or None. ``max_z``: the largest supported Z."""
    import numpy as np

    if len(structure) == 0:
        return "no atoms"
    lat = np.asarray(structure.lattice.matrix, dtype=float)
    if not np.all(np.isfinite(lat)):
        return "the lattice has non-finite entries"
    vol = float(abs(np.linalg.det(lat)))
    if not vol > 1e-3:
        return f"the cell volume {vol:.3g} A^3 is not positive"
    if not np.all(np.isfinite(np.asarray(structure.frac_coords, dtype=float))):
        return "non-finite atom coordinates"
    if not structure.is_ordered:
        return "partially occupied (disordered) sites; give an ordered structure"
    from pymatgen.core.periodic_table import DummySpecies

    for sp in structure.species:
        z = getattr(sp, "Z", None)
        if isinstance(sp, DummySpecies) or not isinstance(z, int) or not 1 <= z <= 118:  # DummySpecies.Z: a hash
            return f"species {sp} is not a chemical element"
        if max_z is not None and z > max_z:
            return f"element {sp} (Z = {z}) is beyond what the model covers (Z <= {max_z})"
    return None


def cif_text(structure: "Structure") -> str:
    """The CIF text pymatgen writes for ``structure`` (``CifWriter``, no symmetry search)."""
    from pymatgen.io.cif import CifWriter

    return str(CifWriter(structure))


def cif_roundtrip_problem(text: str, n_sites: int) -> str | None:
    """Why a CIF text does not read back as the same number of sites (None when it does): pymatgen cannot
    read a file with two atoms on one site, or merges them."""
    import warnings

    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = Structure.from_str(text, fmt="cif")
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for unreadable CIFs
        return f"pymatgen cannot read it back ({type(exc).__name__}); e.g. two atoms on one site"
    if len(back) != n_sites:
        return f"reads back with {len(back)} of {n_sites} sites (atoms on one site were merged)"
    return None
