"""Reading crystal inputs and writing outputs atomically (temp file + rename)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from structures.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from pymatgen.core import Structure


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the temp file onto ``path`` (:func:`structures.atomic.atomic_path`)."""
    with atomic_path(path) as tmp:
        write(str(tmp))
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    def w(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    return atomic_write(path, w)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_table(df: "pd.DataFrame", stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.parquet`` atomically."""
    stem = Path(stem)
    csv = atomic_write(stem.with_suffix(".csv"), lambda t: df.to_csv(t, index=False))
    pq = atomic_write(stem.with_suffix(".parquet"), lambda t: df.to_parquet(t, index=False))
    return csv, pq


def write_cif(path: str | os.PathLike, structure: "Structure") -> Path:
    return write_text(path, structure.to(fmt="cif"))


@dataclass
class CrystalInput:
    """Structures to work on, with one identifier per structure (file stem or material_id)."""

    ids: list[str]
    structures: list["Structure"]
    source: str

    def __len__(self) -> int:
        return len(self.structures)


def read_crystal_input(source: str | os.PathLike, split: str | None = None,
                       limit: int | None = None) -> CrystalInput:
    """Structures from a folder of CIF files, a CDVAE-format CSV (``cif`` column) or a named
    data set split (``perov_5`` + ``split``; also written ``perov_5:test``).

    Raises ``ValueError`` / ``FileNotFoundError`` with a message that names the bad input.
    """
    from structures.data import CRYSTAL_DATASETS, load_crystals, read_cdvae_csv

    src = str(source)
    name, _, sp = src.partition(":")
    if name in CRYSTAL_DATASETS and not Path(src).exists():
        split = sp or split
        if not split:
            raise ValueError(f"data set {name!r} needs a split: write {name}:test (or val/train)")
        ds = load_crystals(name, split, limit=limit)
        return CrystalInput(_ids_from_props(ds.properties, len(ds), f"{name}_{split}"), ds.structures,
                            f"{name}:{split}")
    path = Path(src).expanduser()
    if path.is_dir():
        return _read_cif_dir(path, limit)
    if path.is_file():
        if path.suffix.lower() == ".cif":
            return _read_cif_files([path], str(path))
        if path.name.endswith((".csv", ".csv.xz", ".csv.gz")):
            ds = read_cdvae_csv(path, limit=limit)
            return CrystalInput(_ids_from_props(ds.properties, len(ds), path.name.split(".")[0]),
                                ds.structures, str(path))
        raise ValueError(f"{path}: unsupported input; give a folder of .cif files, a .cif, a "
                         "CDVAE-format .csv[.xz] or a data set name such as perov_5:test")
    raise FileNotFoundError(f"input not found: {src!r} is neither a file, a folder nor a data set "
                            f"({', '.join(CRYSTAL_DATASETS)} with :split)")


def _ids_from_props(props: "pd.DataFrame", n: int, prefix: str) -> list[str]:
    if "material_id" in props.columns:
        ids = [str(x) for x in props["material_id"]]
        if len(set(ids)) == n:
            return ids
    return [f"{prefix}_{i}" for i in range(n)]


def _read_cif_dir(path: Path, limit: int | None) -> CrystalInput:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")
    if not files:
        raise ValueError(f"{path}: no .cif files in this folder")
    return _read_cif_files(files[:limit] if limit else files, str(path))


def _read_cif_files(files: list[Path], source: str) -> CrystalInput:
    import warnings

    from pymatgen.core import Structure

    structures = []
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structures.append(Structure.from_file(f))
        except Exception as exc:
            raise ValueError(f"{f}: not a CIF that pymatgen can read ({exc}); fix or remove it") from exc
    return CrystalInput([f.stem for f in files], structures, source)
