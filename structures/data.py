"""Local data access: resolve named data sets to files and read them.

Nothing here downloads. A data set is looked up under one *data root*:

1. the ``GENMATCH_DATA`` environment variable, if set;
2. else the embedded copy inside this package (``structures/embedded/``: Perov-5 and Carbon-24 val/test,
   the MP elemental references, the protein backbone set; see its README), installed with the package.

A named data set that is under neither (the train splits, MP-20, MPTS-52) raises
:class:`DataNotFoundError` with a message that says where to put the files.

Layout under the data root (the CDVAE layout for crystals)::

    crystals/<name>/{train,val,test}.csv[.xz]     perov_5, carbon_24, mp_20, mpts_52
    proteins/promod3_backbones.npz                proteins
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Structure

DATA_ENV = "GENMATCH_DATA"
EMBEDDED_DATA_ROOT = Path(__file__).resolve().parent / "embedded"  # package data
DEFAULT_DATA_ROOT = EMBEDDED_DATA_ROOT

CRYSTAL_DATASETS = ("perov_5", "carbon_24", "mp_20", "mpts_52")
PROTEIN_DATASETS = ("proteins",)
DATASETS = CRYSTAL_DATASETS + PROTEIN_DATASETS
SPLITS = ("train", "val", "test")
PROTEIN_NPZ = Path("proteins") / "promod3_backbones.npz"

_PUBLIC_HOME = {
    "perov_5": "CDVAE's GitHub repository (txie-93/cdvae), data/perov_5/",
    "carbon_24": "CDVAE's GitHub repository (txie-93/cdvae), data/carbon_24/",
    "mp_20": "CDVAE's GitHub repository (txie-93/cdvae), data/mp_20/",
    "mpts_52": "DiffCSP's GitHub repository (jiaor17/DiffCSP), data/mpts_52/",
    "proteins": "the genmatch repository, structures/embedded/proteins/ (built from Debian's "
    "promod3-data StructureDB; see its README)",
}


class DataNotFoundError(InputError, FileNotFoundError):
    """A data set (or the data root) is not on this machine. The message says how to fix it."""


def data_root(required: bool = True) -> Path | None:
    """The data root: ``$GENMATCH_DATA``, else the embedded copy (``structures/embedded``)."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(
                f"{DATA_ENV}={env!r} is not a directory. Point {DATA_ENV} at a folder that holds "
                f"crystals/<name>/<split>.csv[.xz] and/or {PROTEIN_NPZ}."
            )
        return root
    if DEFAULT_DATA_ROOT.is_dir():
        return DEFAULT_DATA_ROOT
    if not required:
        return None
    raise DataNotFoundError(
        f"No data directory: {DATA_ENV} is not set and {DEFAULT_DATA_ROOT} does not exist. "
        f"Set {DATA_ENV}=/path/to/data with crystals/<name>/<split>.csv[.xz] "
        f"(public copies: CDVAE's GitHub, data/<name>/) and {PROTEIN_NPZ}."
    )


def _missing(name: str, where: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"Data set {name!r} not found: looked for {where}. Put the files there (or set "
        f"{DATA_ENV} to a folder that has them); the public copy lives in {_PUBLIC_HOME[name]}."
    )


def resolve_dataset(name: str, split: str | None = None) -> Path:
    """Local path of a named data set (a CSV for crystals, the npz for proteins).

    Args:
        name: one of ``perov_5, carbon_24, mp_20, mpts_52, proteins``.
        split: ``train``, ``val`` or ``test`` (crystals only; required for them).
    Raises:
        ValueError: unknown name or split.
        DataNotFoundError: the file is not on this machine (message says where to put it).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    root = data_root()
    assert root is not None
    if name in PROTEIN_DATASETS:
        path = root / PROTEIN_NPZ
        if not path.is_file():
            raise _missing(name, str(path))
        return path
    if split not in SPLITS:
        raise ValueError(f"data set {name!r} needs a split: one of {', '.join(SPLITS)} (got {split!r})")
    for suffix in (".csv", ".csv.xz"):
        path = root / "crystals" / name / f"{split}{suffix}"
        if path.is_file():
            return path
    raise _missing(name, str(root / "crystals" / name / f"{split}.csv[.xz]"))


def available_datasets() -> dict[str, list[str]]:
    """Data sets present under the data root: ``{name: [splits]}`` (``[""]`` for proteins)."""
    root = data_root(required=False)
    found: dict[str, list[str]] = {}
    if root is None:
        return found
    for name in CRYSTAL_DATASETS:
        splits = [s for s in SPLITS if any((root / "crystals" / name / f"{s}{x}").is_file() for x in (".csv", ".csv.xz"))]
        if splits:
            found[name] = splits
    if (root / PROTEIN_NPZ).is_file():
        found["proteins"] = [""]
    return found


# ----------------------------------------------------------------------------------------------
# Crystals (CDVAE-format CSV: a `cif` column plus property columns)
# ----------------------------------------------------------------------------------------------


@dataclass
class CrystalDataset:
    """Structures of one CDVAE-format CSV with their property table (row i <-> structures[i])."""

    name: str
    structures: list["Structure"]
    properties: "pd.DataFrame"  # one row per structure; every column but `cif`
    source: Path

    def __len__(self) -> int:
        return len(self.structures)

    def __iter__(self) -> Iterator["Structure"]:
        return iter(self.structures)

    def __getitem__(self, i: int) -> "Structure":
        return self.structures[i]


def read_cdvae_csv(path: str | os.PathLike, limit: int | None = None) -> CrystalDataset:
    """Read a CDVAE-format CSV (``.csv`` or ``.csv.xz``) into pymatgen Structures.

    The CSV must have a ``cif`` column; all other columns (material_id, formula, energies, ...)
    become ``properties``. The unnamed index column CDVAE writes is dropped.
    """
    import pandas as pd
    from pymatgen.core import Structure

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"crystal CSV not found: {path}")
    try:
        df = pd.read_csv(path, nrows=limit)
    except Exception as exc:  # pandas raises many types for broken files
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc
    if "cif" not in df.columns:
        raise ValueError(f"{path}: no 'cif' column (columns: {', '.join(map(str, df.columns))}); "
                         "expected the CDVAE format")
    df = df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed")])
    structures = []
    with warnings.catch_warnings():  # pymatgen notes each coordinate it snaps to an ideal value
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        for i, cif in enumerate(df["cif"]):
            try:
                structures.append(Structure.from_str(cif, fmt="cif"))
            except Exception as exc:
                raise ValueError(f"{path}: row {i} has a CIF that pymatgen cannot parse ({exc})") from exc
    props = df.drop(columns=["cif"]).reset_index(drop=True)
    name = path.parent.name
    return CrystalDataset(name=name, structures=structures, properties=props, source=path)


def load_crystals(name: str, split: str, limit: int | None = None) -> CrystalDataset:
    """Load a named crystal data set split (``perov_5``, ``carbon_24``, ``mp_20``, ``mpts_52``),
    or, when ``name`` is a path to a CSV, that file."""
    if name not in DATASETS and Path(name).suffix in (".csv", ".xz"):
        return read_cdvae_csv(name, limit=limit)
    if name in PROTEIN_DATASETS:
        raise ValueError(f"{name!r} is a protein data set; use load_proteins()")
    ds = read_cdvae_csv(resolve_dataset(name, split), limit=limit)
    ds.name = name
    return ds


# ----------------------------------------------------------------------------------------------
# Proteins (the npz schema of structures/embedded/proteins/README.md)
# ----------------------------------------------------------------------------------------------

BACKBONE_ATOMS = ("N", "CA", "C", "O")


@dataclass(frozen=True)
class ProteinChain:
    """One backbone chain. ``coords`` [L, 4, 3] in Angstrom, atoms N, CA, C, O."""

    name: str  # "<pdb_id>_<chain_id>"
    coords: np.ndarray  # [L, 4, 3] float32, Angstrom
    sequence: str  # one-letter codes, length L
    dssp: str  # DSSP letters, length L
    start_resnum: int = 1

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def ca(self) -> np.ndarray:  # [L, 3]
        return self.coords[:, 1]


@dataclass
class ProteinBackboneSet:
    """The packed backbone set: chain i is rows ``offsets[i]:offsets[i+1]`` of the residue arrays."""

    coords: np.ndarray  # [R, 4, 3] float32, Angstrom
    offsets: np.ndarray  # [C + 1] int64
    sequence: np.ndarray  # [R] uint8 ASCII
    dssp: np.ndarray  # [R] uint8 ASCII
    pdb_id: np.ndarray  # [C] str
    chain_id: np.ndarray  # [C] str
    start_resnum: np.ndarray  # [C] int32
    source: Path | None = None
    lengths: np.ndarray = field(init=False)  # [C]

    def __post_init__(self) -> None:
        self.lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> ProteinChain:
        if not -len(self) <= i < len(self):
            raise IndexError(f"chain index {i} out of range for {len(self)} chains")
        i %= len(self)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return ProteinChain(
            name=f"{self.pdb_id[i]}_{self.chain_id[i]}",
            coords=self.coords[a:b],
            sequence=self.sequence[a:b].tobytes().decode("ascii"),
            dssp=self.dssp[a:b].tobytes().decode("ascii"),
            start_resnum=int(self.start_resnum[i]),
        )

    def __iter__(self) -> Iterator[ProteinChain]:
        return (self[i] for i in range(len(self)))


_NPZ_KEYS = ("coords", "offsets", "sequence", "dssp", "pdb_id", "chain_id", "start_resnum")


def load_proteins(path: str | os.PathLike | None = None) -> ProteinBackboneSet:
    """Load the packed protein backbone npz (default: the ``proteins`` data set).

    Coordinates are stored as int16 in units of 0.01 Angstrom and returned as float32 Angstrom.
    The file is read with ``allow_pickle=False``.
    """
    path = Path(path) if path is not None else resolve_dataset("proteins")
    if not path.is_file():
        raise DataNotFoundError(f"protein npz not found: {path}")
    if not zipfile.is_zipfile(path):  # else np.load reads it as a pickle, and its error advises allow_pickle
        raise ValueError(f"{path}: not an npz archive; expected the schema of structures/embedded/proteins/README.md")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in _NPZ_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; expected the schema of "
                             "structures/embedded/proteins/README.md")
        coords = z["coords"]
        if coords.dtype == np.int16:
            coords = coords.astype(np.float32) / 100.0
        return ProteinBackboneSet(
            coords=coords.astype(np.float32, copy=False),
            offsets=z["offsets"].astype(np.int64),
            sequence=z["sequence"],
            dssp=z["dssp"],
            pdb_id=z["pdb_id"],
            chain_id=z["chain_id"],
            start_resnum=z["start_resnum"],
            source=path,
        )


def dataset_size(name: str, split: str | None = None) -> int:
    """Number of entries of a data set file without parsing structures (rows or chains)."""
    path = resolve_dataset(name, split)
    if name in PROTEIN_DATASETS:
        with np.load(path, allow_pickle=False) as z:
            return int(len(z["offsets"]) - 1)
    import pandas as pd

    return int(len(pd.read_csv(path, usecols=["cif"])))


