"""Every way a caller can hand crystals to a stage, turned into one :class:`~pipeline.common.io.CrystalInput`.

Accepted: a pymatgen ``Structure`` or an ASE ``Atoms`` (converted with ``pymatgen.io.ase.AseAtomsAdaptor``), a
list of them (ids ``s000000``, ``s000001``, ...), a dict ``{id: structure}`` (the caller's ids), a previous result
(:class:`~pipeline.crystals.results.GeneratedCrystals`, :class:`~pipeline.crystals.results.RelaxedCrystals`:
their ids), a CIF file, a folder of CIFs, a CDVAE-format CSV or a data set split such as ``"perov_5:test"``
(:func:`pipeline.common.io.read_crystal_input`). Anything else raises :class:`~structures.errors.InputError`
naming the argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.common.io import CrystalInput, read_crystal_input
from pipeline.crystals.results import GeneratedCrystals, RelaxedCrystals
from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

ACCEPTED = ("pymatgen Structures or ASE Atoms (one, a list, or a dict id -> structure), a GeneratedCrystals or "
            "RelaxedCrystals result, a CIF file, a folder of CIFs, a CDVAE-format CSV or a data set split such as "
            "'perov_5:test'")


def _got(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}... ({type(value).__name__})" if len(text) > 60 else f"{text} ({type(value).__name__})"


def as_structure(value: Any, name: str) -> "Structure":
    """A pymatgen ``Structure`` from a Structure / IStructure or a periodic ASE ``Atoms``; InputError naming
    ``name`` otherwise."""
    from pymatgen.core import IStructure, Structure

    if isinstance(value, Structure):
        return value
    if isinstance(value, IStructure):
        return Structure.from_sites(value)
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover - ase comes with chgnet
        Atoms = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(value, Atoms):
        if not value.pbc.any() or value.cell.rank < 3:
            raise InputError(f"{name} is an ASE Atoms without a periodic 3D cell (pbc {value.pbc.tolist()}, cell "
                             f"rank {value.cell.rank}); give a crystal (set atoms.cell and atoms.pbc = True)")
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(value)
    raise InputError(f"{name} must be a pymatgen Structure or an ASE Atoms, got {_got(value)}")


def as_crystal_input(value: Any, name: str, limit: int | None = None) -> CrystalInput:
    """``value`` (see the module doc) as a :class:`CrystalInput` of at most ``limit`` structures.

    ``name`` is how the caller's argument is named in error messages (``"score(structures=...)"``). A previous
    :class:`RelaxedCrystals` gives its relaxed structures; an input whose relaxation failed is an unusable item
    whose problem says why.
    """
    if isinstance(value, CrystalInput):
        return _first(value, limit)
    if isinstance(value, (str, os.PathLike)):
        try:
            return read_crystal_input(value, limit=limit)
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None
    if isinstance(value, GeneratedCrystals):
        inp = CrystalInput(list(value.ids), list(value.structures), str(value.out_dir or "generated crystals"))
        return _first(inp, limit)
    if isinstance(value, RelaxedCrystals):
        return _first(_relaxed(value), limit)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str) or not k]
        if bad:
            raise InputError(f"{name}: the keys of a dict of structures are their ids and must be non-empty "
                             f"strings, got {_got(bad[0])}")
        ids = list(value)
        items = [value[k] for k in ids]
        where = [f"{name}[{k!r}]" for k in ids]
        source = "dict of structures"
    elif _is_structure(value):
        ids, items, where, source = ["s000000"], [value], [name], "one structure"
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items = list(value)
        ids = [f"s{i:06d}" for i in range(len(items))]
        where = [f"{name}[{i}]" for i in range(len(items))]
        source = "list of structures"
    else:
        raise InputError(f"{name} must be {ACCEPTED}; got {_got(value)}")
    if not items:
        raise InputError(f"{name} holds no structures; give at least one")
    if limit is not None:
        ids, items, where = ids[:limit], items[:limit], where[:limit]
    return CrystalInput(ids, [as_structure(x, w) for x, w in zip(items, where)], source)


def _is_structure(value: Any) -> bool:
    from pymatgen.core import IStructure

    if isinstance(value, IStructure):
        return True
    try:
        from ase import Atoms
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, Atoms)


def _first(inp: CrystalInput, limit: int | None) -> CrystalInput:
    if limit is None or limit >= len(inp):
        return inp
    return CrystalInput(inp.ids[:limit], inp.structures[:limit], inp.source, inp.problems[:limit])


def _relaxed(value: RelaxedCrystals) -> CrystalInput:
    ok = value.relaxed_mask()
    reasons = value.table["reason"].fillna("").astype(str).tolist() if "reason" in value.table else [""] * len(ok)
    problems = [None if k else f"not relaxed ({r or 'relaxation failed'})" for k, r in zip(ok, reasons)]
    structures = [s if k else None for s, k in zip(value.structures, ok)]
    return CrystalInput(list(value.ids), structures, str(value.out_dir or "relaxed crystals"), problems)
