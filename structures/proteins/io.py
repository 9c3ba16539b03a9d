"""Read and write protein backbones (N, CA, C, O) as PDB or mmCIF with biotite.

Reading (:func:`read_chains`, :func:`read_chain`):

- formats by suffix: ``.pdb``/``.ent`` (PDB), ``.cif``/``.mmcif`` (mmCIF), ``.bcif`` (BinaryCIF),
  each optionally ``.gz``;
- alternate locations: the highest-occupancy altloc of each atom (biotite ``altloc="occupancy"``);
- insertion codes: a residue is (chain, res_id, ins_code), so 52 and 52A are two residues;
- HETATM: only amino acids are kept (water and ligands dropped); modified amino acids recorded as
  HETATM (MSE, SEP, ...) are kept with their parent's one-letter code unless ``include_hetero=False``;
  a residue biotite does not know as an amino acid but that has N, CA and C atoms is kept too (as ``X``,
  with its name), so that a chain never silently loses a residue from its middle;
- missing atoms: ``atom_mask[i, k] = False`` and zero coordinates (never a crash);
- multiple chains: :func:`read_chains` splits them, :func:`read_chain` picks one (by id, or the
  first chain with amino acids);
- models: ``model=1`` (default) or ``model="all"`` for a trajectory ``coords [M, L, 4, 3]``;
- sequence: one-letter codes of the residues present in the coordinates (``X`` for unknown);
- B-factors: per atom, ``b_factors [L, 4]`` (first model).

Unusable input (missing file, a path that is not a regular file, unknown suffix, unparsable text, no amino
acids, unknown chain) raises :class:`StructureFileError` with the path and what to do; a non-regular file (fifo,
folder, dangling link) is never opened. Whether a chain read is *usable* (finite coordinates in a physical box,
complete backbone, known residues) is decided by :mod:`structures.proteins.checks`. Writing is atomic (temp +
rename).

What a user gives (FASTA files, folders of structure files, sequences, chains given in Python) is read by
:mod:`structures.proteins.inputs` (those names stay importable from here).
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from structures.atomic import atomic_path
from structures.data import BACKBONE_ATOMS, ProteinChain
from structures.proteins.checks import file_problem
from structures.proteins.residue_constants import MODIFIED_TO_ONE, RESTYPE_1TO3, RESTYPE_3TO1

ELEMENTS = ("N", "C", "C", "O")
FORMATS = {".pdb": "pdb", ".ent": "pdb", ".cif": "cif", ".mmcif": "cif", ".bcif": "bcif"}


class StructureFileError(ValueError):
    """A structure file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class BackboneChain:
    """Backbone of one chain as read from (or to be written to) a structure file.

    ``coords`` is [L, 4, 3] (one model) or [M, L, 4, 3] (trajectory); atoms N, CA, C, O.
    """

    coords: np.ndarray  # [L, 4, 3] or [M, L, 4, 3] float32, Angstrom
    atom_mask: np.ndarray  # [L, 4] bool, atom present in the file
    sequence: str  # one-letter, length L ("X" = unknown)
    chain_id: str = "A"
    res_ids: np.ndarray | None = None  # [L] int (default 1..L)
    ins_codes: np.ndarray | None = None  # [L] str ("" = none)
    b_factors: np.ndarray | None = None  # [L, 4] float32
    res_names: tuple[str, ...] | None = None  # three-letter names as in the file
    name: str = ""

    def __post_init__(self) -> None:
        L = len(self.sequence)
        if self.coords.shape[-3:] != (L, 4, 3) or self.coords.ndim not in (3, 4):
            raise ValueError(f"coords must be [L, 4, 3] or [M, L, 4, 3] with L={L}, got {self.coords.shape}")
        if self.atom_mask.shape != (L, 4):
            raise ValueError(f"atom_mask must be [{L}, 4], got {self.atom_mask.shape}")
        if self.res_ids is None:
            object.__setattr__(self, "res_ids", np.arange(1, L + 1))
        if self.ins_codes is None:
            object.__setattr__(self, "ins_codes", np.full(L, "", dtype="<U1"))
        if self.res_names is None:
            object.__setattr__(self, "res_names", tuple(RESTYPE_1TO3.get(a, "UNK") for a in self.sequence))

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def n_models(self) -> int:
        return 1 if self.coords.ndim == 3 else self.coords.shape[0]

    def model(self, i: int) -> "BackboneChain":
        """Model ``i`` (0-based) of a trajectory as a single-model chain."""
        return self if self.coords.ndim == 3 else replace(self, coords=self.coords[i])

    @property
    def standard(self) -> np.ndarray:  # [L] bool
        """Residue is one of the 20 standard amino acids by its residue name in the file."""
        return np.array([n in RESTYPE_3TO1 and n != "UNK" for n in self.res_names], dtype=bool)

    @property
    def backbone_complete(self) -> np.ndarray:  # [L] bool
        """N, CA and C are all present (enough for a frame)."""
        return self.atom_mask[:, :3].all(-1)

    def chain_breaks(self, max_c_n: float = 2.0) -> np.ndarray:
        """[L - 1] bool: residue i is not bonded to i + 1 (C-N over ``max_c_n`` Angstrom, or C/N missing)."""
        x = self.coords if self.coords.ndim == 3 else self.coords[0]
        d = np.linalg.norm(x[1:, 0] - x[:-1, 2], axis=-1)
        return (d > max_c_n) | ~self.atom_mask[1:, 0] | ~self.atom_mask[:-1, 2]

    def to_protein_chain(self) -> ProteinChain:
        """As the npz data set's :class:`ProteinChain` (first model; DSSP unknown = '-')."""
        x = self.coords if self.coords.ndim == 3 else self.coords[0]
        return ProteinChain(name=self.name or self.chain_id, coords=x.astype(np.float32), sequence=self.sequence,
                            dssp="-" * len(self), start_resnum=int(self.res_ids[0]) if len(self) else 1)

    @classmethod
    def from_coords(cls, coords: np.ndarray, sequence: str | None = None, chain_id: str = "A",
                    b_factors: np.ndarray | None = None, atom_mask: np.ndarray | None = None,
                    res_ids: np.ndarray | None = None, name: str = "") -> "BackboneChain":
        """A chain from backbone coordinates [L, 4, 3] / [M, L, 4, 3] (e.g. a sample); default
        sequence all-glycine, B-factors per residue [L] or per atom [L, 4]."""
        coords = np.asarray(coords, dtype=np.float32)
        L = coords.shape[-3]
        sequence = sequence if sequence is not None else "G" * L
        if b_factors is not None:
            b_factors = np.asarray(b_factors, dtype=np.float32)
            if b_factors.shape == (L,):
                b_factors = np.repeat(b_factors[:, None], 4, axis=1)
        mask = np.ones((L, 4), bool) if atom_mask is None else np.asarray(atom_mask, bool)
        return cls(coords=coords, atom_mask=mask, sequence=sequence, chain_id=chain_id,
                   res_ids=None if res_ids is None else np.asarray(res_ids), b_factors=b_factors, name=name)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _format(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    ext = suffixes[-2] if gz and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if ext not in FORMATS:
        raise StructureFileError(f"{path}: unknown structure format {ext or '(no suffix)'!r}; use one of "
                                 f"{', '.join(FORMATS)} (optionally .gz)")
    return FORMATS[ext], gz


def _load_atoms(path: Path, model: int | Literal["all"], altloc: str):
    """biotite AtomArray (one model) or AtomArrayStack (all models) with b_factor/occupancy."""
    import biotite.structure.io.pdb as pdb
    import biotite.structure.io.pdbx as pdbx

    fmt, gz = _format(path)
    problem = file_problem(path)
    if problem is not None:
        raise StructureFileError(f"{path}: {'no such file' if not os.path.lexists(path) else problem}")
    try:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        extra = ["b_factor", "occupancy"]
        mdl = None if model == "all" else int(model)
        if fmt == "pdb":
            f = pdb.PDBFile.read(io.StringIO(raw.decode("utf-8", errors="replace")))
            n_models = f.get_model_count()
            _check_model(path, mdl, n_models)
            return f.get_structure(model=mdl, altloc=altloc, extra_fields=extra)
        f = (pdbx.BinaryCIFFile.read(io.BytesIO(raw)) if fmt == "bcif"
             else pdbx.CIFFile.read(io.StringIO(raw.decode("utf-8", errors="replace"))))
        _check_model(path, mdl, pdbx.get_model_count(f))
        return pdbx.get_structure(f, model=mdl, altloc=altloc, extra_fields=extra, use_author_fields=True)
    except StructureFileError:
        raise
    except Exception as exc:  # biotite raises InvalidFileError, ValueError, KeyError, ...
        hint = ("models have different atoms; read one with model=<n>" if model == "all"
                else "check that it is a complete, valid file")
        raise StructureFileError(f"{path}: cannot read as {fmt.upper()} ({type(exc).__name__}: {exc}); {hint}") from exc


def _check_model(path: Path, model: int | None, n_models: int) -> None:
    if n_models == 0:
        raise StructureFileError(f"{path}: the file has no atoms (no models)")
    if model is not None and not 1 <= model <= n_models:
        raise StructureFileError(f"{path}: model {model} requested but the file has {n_models} model(s) (1-based)")


def _chain_from_atoms(atoms, chain_id: str, name: str) -> BackboneChain:
    """Backbone arrays of one chain's amino-acid atoms (AtomArray or AtomArrayStack)."""
    import biotite.structure as struc

    first = atoms[0] if atoms.coord.ndim == 3 else atoms
    starts = struc.get_residue_starts(first)  # [L]
    L = len(starts)
    res_index = np.cumsum(np.isin(np.arange(first.array_length()), starts)) - 1  # atom -> residue
    coord = atoms.coord  # [(M,) n_atoms, 3]
    stacked = coord.ndim == 3
    out = np.zeros(((coord.shape[0],) if stacked else ()) + (L, 4, 3), dtype=np.float32)
    mask = np.zeros((L, 4), dtype=bool)
    bfac = np.zeros((L, 4), dtype=np.float32)
    for k, atom in enumerate(BACKBONE_ATOMS):
        sel = np.flatnonzero(first.atom_name == atom)
        r = res_index[sel]
        if stacked:
            out[:, r, k] = coord[:, sel]
        else:
            out[r, k] = coord[sel]
        mask[r, k] = True
        bfac[r, k] = first.b_factor[sel]
    res_names = tuple(str(n) for n in first.res_name[starts])
    seq = "".join(RESTYPE_3TO1.get(n, MODIFIED_TO_ONE.get(n, "X")) if n != "UNK" else "X" for n in res_names)
    return BackboneChain(coords=out, atom_mask=mask, sequence=seq, chain_id=chain_id,
                         res_ids=first.res_id[starts].astype(np.int64),
                         ins_codes=first.ins_code[starts].astype("<U1"), b_factors=bfac,
                         res_names=res_names, name=name)


def read_chains(path: str | os.PathLike, model: int | Literal["all"] = 1, altloc: str = "occupancy",
                include_hetero: bool = True) -> list[BackboneChain]:
    """Every chain with amino acids in a PDB / mmCIF file, split (see the module docstring)."""
    import biotite.structure as struc

    path = Path(path)
    atoms = _load_atoms(path, model, altloc)
    first = atoms[0] if atoms.coord.ndim == 3 else atoms
    keep = struc.filter_amino_acids(first) | _peptide_like(first)
    if not include_hetero:
        keep &= ~first.hetero
    if not keep.any():
        raise StructureFileError(f"{path}: no amino-acid residues found (only {len(np.unique(first.res_name))} "
                                 f"residue types such as {', '.join(np.unique(first.res_name)[:5])}); "
                                 "is this a protein structure?")
    atoms = atoms[..., keep]
    first = first[keep]
    stem = path.name.split(".")[0]
    chains = []
    for cid in dict.fromkeys(first.chain_id.tolist()):  # file order, unique
        chains.append(_chain_from_atoms(atoms[..., first.chain_id == cid], cid, f"{stem}_{cid}"))
    return chains


def _peptide_like(atoms) -> np.ndarray:
    """[n_atoms] bool: the atom's residue has N, CA and C atoms (an amino acid, known to biotite or not)."""
    import biotite.structure as struc

    starts = struc.get_residue_starts(atoms)
    res = np.cumsum(np.isin(np.arange(atoms.array_length()), starts)) - 1  # atom -> residue
    has = np.ones(len(starts), bool)
    for name in ("N", "CA", "C"):
        present = np.zeros(len(starts), bool)
        present[res[atoms.atom_name == name]] = True
        has &= present
    return has[res]


def read_chain(path: str | os.PathLike, chain: str | None = None, model: int | Literal["all"] = 1,
               altloc: str = "occupancy", include_hetero: bool = True) -> BackboneChain:
    """One chain of a PDB / mmCIF file: ``chain`` by id, or the first chain with amino acids."""
    chains = read_chains(path, model, altloc, include_hetero)
    if chain is None:
        return chains[0]
    for c in chains:
        if c.chain_id == chain:
            return c
    raise StructureFileError(f"{path}: no protein chain {chain!r}; chains with amino acids: "
                             f"{', '.join(c.chain_id for c in chains)}")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _atoms_of(chains: Sequence[BackboneChain]):
    import biotite.structure as struc

    n_models = {c.n_models for c in chains}
    if len(n_models) != 1:
        raise ValueError(f"all chains must have the same number of models, got {sorted(n_models)}")
    m = n_models.pop()
    parts, coords = [], []
    for c in chains:
        r, k = np.nonzero(c.atom_mask)  # residue, atom slot of every present atom (residue-major)
        n = len(r)
        arr = struc.AtomArray(n)
        arr.chain_id = np.full(n, c.chain_id)
        arr.res_id = np.asarray(c.res_ids)[r]
        arr.ins_code = np.asarray(c.ins_codes)[r]
        arr.res_name = np.array(c.res_names)[r]
        arr.atom_name = np.array(BACKBONE_ATOMS)[k]
        arr.element = np.array(ELEMENTS)[k]
        arr.hetero = np.zeros(n, bool)
        b = c.b_factors if c.b_factors is not None else np.zeros((len(c), 4), np.float32)
        arr.set_annotation("b_factor", np.asarray(b, np.float32)[r, k])
        arr.set_annotation("occupancy", np.ones(n, np.float32))
        x = c.coords if c.coords.ndim == 4 else c.coords[None]
        coords.append(x[:, r, k])  # [M, n, 3]
        parts.append(arr)
    atoms = parts[0] if len(parts) == 1 else struc.concatenate(parts)
    xyz = np.concatenate(coords, axis=1)  # [M, N, 3]
    if not np.isfinite(xyz).all():
        raise ValueError("coordinates contain NaN or inf; mask missing atoms with atom_mask instead")
    if m == 1:
        atoms.coord = xyz[0]
        return atoms
    stack = struc.stack([atoms] * m)
    stack.coord = xyz
    return stack


def write_structure(path: str | os.PathLike, chains: BackboneChain | Sequence[BackboneChain]) -> Path:
    """Write chains (one model, or a trajectory when coords are [M, L, 4, 3]) as PDB / mmCIF / BinaryCIF.

    The format follows the suffix. Written to a temporary file and renamed (atomic).
    """
    import biotite.structure as struc
    import biotite.structure.io.pdb as pdb
    import biotite.structure.io.pdbx as pdbx

    path = Path(path)
    fmt, gz = _format(path)
    if gz:
        raise StructureFileError(f"{path}: writing compressed (.gz) files is not supported; drop the .gz")
    chains = [chains] if isinstance(chains, BackboneChain) else list(chains)
    if not chains:
        raise ValueError("nothing to write: no chains")
    atoms = _atoms_of(chains)
    try:
        with atomic_path(path) as tmp:
            if fmt == "pdb":
                f = pdb.PDBFile()
                f.set_structure(atoms)
            else:
                f = pdbx.BinaryCIFFile() if fmt == "bcif" else pdbx.CIFFile()
                pdbx.set_structure(f, atoms)
            f.write(str(tmp))
    except (struc.BadStructureError, ValueError) as exc:
        hint = "; mmCIF (.cif) has no fixed-width limits" if fmt == "pdb" else ""
        raise StructureFileError(f"{path}: cannot write as {fmt.upper()} ({exc}){hint}") from exc
    return path


_MOVED = ("is_structure_name", "structure_files", "check_sequence", "read_fasta", "read_backbones", "as_backbone_chain")


def __getattr__(name: str) -> object:
    """The readers of user inputs, moved to :mod:`structures.proteins.inputs`, still importable from here."""
    if name in _MOVED:
        from structures.proteins import inputs

        return getattr(inputs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
