"""Checks that a protein input is a usable file and a complete, physical backbone, before any work is spent on it.

The one place that decides whether a protein structure can be used; ``generate`` (inverse-folding targets),
``score`` and the training data all call it after reading a chain.

* :func:`~structures.paths.file_problem` (shared with crystals): a path that is not a regular file (missing,
  dangling link, symlink loop, fifo, socket, device, directory) is refused *without opening it* (opening a fifo
  would block).
* :func:`check_chain` of a :class:`~structures.proteins.io.BackboneChain`:

  - coordinates: every present atom finite (no NaN / inf) and within ``|x| <= MAX_COORD`` Angstrom (a PDB
    whose fixed columns overflow reads as ~1e7 Angstrom);
  - backbone: N, CA and C present at every residue (O is rebuilt where the code needs it);
  - residues: the 20 standard amino acids; the common modified residues of
    :data:`~structures.proteins.residue_constants.MODIFIED_TO_ONE` (MSE -> MET, SEP -> SER, TPO -> THR,
    PTR -> TYR, HYP -> PRO, MLY -> LYS, CSO -> CYS, ...) are read as their parent and reported in
    ``notes``; ``UNK`` (type unknown, e.g. structure-only samples) is kept as ``X``; any other residue
    (D-amino acids, unknown names, a ligand-like residue inside the chain) is refused by name.

Each check returns ``None`` when the input is fine, else one line naming the residue (the caller adds the
file). They never raise on bad input: a batch records the reason per file and goes on. :func:`checked` is
the strict form for a single input: it raises :class:`~structures.errors.InputError` and warns the notes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from structures.errors import InputError
from structures.paths import file_problem  # noqa: F401 - re-exported: the protein readers' import
from structures.proteins.residue_constants import MODIFIED_TO_ONE, RESTYPE_1TO3, RESTYPE_3TO1

if TYPE_CHECKING:  # pragma: no cover
    from structures.proteins.io import BackboneChain

#: the physical box of coordinates, Angstrom (a PDB file's 8.3 columns hold at most 9999.999)
MAX_COORD = 9999.0
#: at most this many residues are named in one message
_SHOWN = 3


@dataclass(frozen=True)
class ChainCheck:
    """The verdict on one chain: ``problem`` (None = usable) and ``notes`` (e.g. modified residues mapped)."""

    problem: str | None
    notes: tuple[str, ...] = ()


def _residue(chain: BackboneChain, i: int) -> str:
    return f"{chain.res_names[i]} {chain.res_ids[i]}{chain.ins_codes[i]}"


def _residues(chain: BackboneChain, idx: np.ndarray) -> str:
    """'residue GLY 12' / 'residues GLY 12, ALA 13 and 4 more' of chain X."""
    shown = ", ".join(_residue(chain, int(i)) for i in idx[:_SHOWN])
    more = f" and {len(idx) - _SHOWN} more" if len(idx) > _SHOWN else ""
    return f"chain {chain.chain_id} residue{'s' if len(idx) > 1 else ''} {shown}{more}"


def coordinate_problem(chain: BackboneChain) -> str | None:
    """Non-finite or out-of-box coordinates of a present atom (any model), naming the residue, or None."""
    x = chain.coords if chain.coords.ndim == 4 else chain.coords[None]  # [M, L, 4, 3]
    mask = np.asarray(chain.atom_mask, bool)[None, :, :, None]
    finite = np.isfinite(x) | ~mask
    bad = np.flatnonzero(~finite.all(axis=(0, 2, 3)))
    if bad.size:
        return (f"{_residues(chain, bad)}: non-finite coordinates (NaN or inf); fix or remove the atoms")
    big = np.where(mask, np.abs(x), 0.0).max(axis=(0, 2, 3)) > MAX_COORD
    bad = np.flatnonzero(big)
    if bad.size:
        worst = float(np.where(mask, np.abs(x), 0.0).max())
        return (f"{_residues(chain, bad)}: a coordinate of {worst:.3g} Angstrom, outside +-{MAX_COORD:g} "
                "(overflowing PDB columns?); write the structure as mmCIF or recentre it")
    return None


def backbone_problem(chain: BackboneChain) -> str | None:
    """Residues that miss N, CA or C (named with the missing atoms), or None; O may be missing."""
    mask = np.asarray(chain.atom_mask, bool)
    bad = np.flatnonzero(~mask[:, :3].all(-1))
    if not bad.size:
        return None
    missing = ", ".join(a for k, a in enumerate(("N", "CA", "C")) if not mask[bad, k].all())
    return f"{_residues(chain, bad)} miss{'' if len(bad) > 1 else 'es'} {missing} atoms; give a complete backbone"


def residue_problem(chain: BackboneChain) -> str | None:
    """Residues that are neither standard, ``UNK`` nor a mapped modified residue, or None."""
    bad = np.flatnonzero([not _known(n) for n in chain.res_names])
    if not bad.size:
        return None
    return (f"{_residues(chain, bad)}: not a standard amino acid nor a known modified one (such as "
            f"{', '.join(list(MODIFIED_TO_ONE)[:5])}); replace it by its parent amino acid")


def residue_notes(chain: BackboneChain) -> tuple[str, ...]:
    """One note per modified residue name that was read as its parent, e.g. 'MSE read as MET (2 residues)'."""
    names = [n for n in chain.res_names if n in MODIFIED_TO_ONE and n not in RESTYPE_3TO1]
    return tuple(f"chain {chain.chain_id}: {n} read as {RESTYPE_1TO3[MODIFIED_TO_ONE[n]]} "
                 f"({names.count(n)} residue{'s' if names.count(n) > 1 else ''})" for n in dict.fromkeys(names))


def _known(name: str) -> bool:
    return name in RESTYPE_3TO1 or name in MODIFIED_TO_ONE


def check_chain(chain: BackboneChain) -> ChainCheck:
    """The verdict on one chain: the first problem found (coordinates, backbone, residues) and the notes."""
    if len(chain) == 0:
        return ChainCheck("no residues")
    problem = coordinate_problem(chain) or backbone_problem(chain) or residue_problem(chain)
    return ChainCheck(problem, residue_notes(chain))


def warn_notes(where: str, notes: tuple[str, ...]) -> None:
    """Say, as one :class:`UserWarning`, what was read differently from the file (e.g. mapped residues)."""
    if notes:
        warnings.warn(f"{where}: {'; '.join(notes)}", UserWarning, stacklevel=3)


def checked(chain: BackboneChain, where: str) -> BackboneChain:
    """``chain`` if usable (its notes warned), else :class:`InputError` ``<where>: <problem>``."""
    verdict = check_chain(chain)
    if verdict.problem is not None:
        raise InputError(f"{where}: {verdict.problem}")
    warn_notes(where, verdict.notes)
    return chain
