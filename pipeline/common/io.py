"""Reading crystal inputs and writing outputs atomically (temp file + rename)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pipeline.common.run import fingerprint
from structures.atomic import atomic_path
from structures.crystals.checks import cif_text_problem, formula_problem, structure_problem
from structures.errors import InputError
from structures.ids import safe_id
from structures.paths import file_problem

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
    return write_text(path, json.dumps(obj, indent=2, default=json_default) + "\n")


def read_checkpoint(path: Path | None) -> dict[str, dict[str, Any]]:
    """The finished rows of a run's JSON-lines checkpoint by their ``id`` ({} when there is none); a line cut by an
    interruption is not a row."""
    return {row["id"]: row for _, row in _checkpoint_rows(path)}


def read_checkpoint_lines(path: Path | None) -> dict[str, str]:
    """The same rows as :func:`read_checkpoint`, each as its line exactly as written (to copy them byte for byte)."""
    return {row["id"]: line for line, row in _checkpoint_rows(path)}


def _checkpoint_rows(path: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """(line, row) of each finished row: a line that is not a JSON object with an ``id`` is not a row."""
    out = []
    if path is not None and path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "id" in row:
                out.append((line, row))
    return out


def json_default(o: Any) -> Any:
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

    def parquet(tmp: str) -> None:
        import io

        buf = io.BytesIO()  # bytes, not a path: pyarrow cannot open a path that is not valid UTF-8
        df.to_parquet(buf, index=False)
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())

    csv = atomic_write(stem.with_suffix(".csv"), lambda t: df.to_csv(t, index=False))
    pq = atomic_write(stem.with_suffix(".parquet"), parquet)
    return csv, pq


def write_cif(path: str | os.PathLike, structure: "Structure") -> Path:
    return write_text(path, structure.to(fmt="cif"))


@dataclass
class CrystalInput:
    """Structures to work on, one identifier per structure (file stem or material_id).

    ``problems[i]`` is None for a usable structure, else why structure ``i`` cannot be used (an
    unreadable or incomplete CIF, a non-physical cell); ``structures[i]`` is then None. Stages record
    such items as failed rows and go on with the rest. ``fingerprint``: the content hash of the input
    (file bytes, not names: :func:`pipeline.common.run.fingerprint`) that run folders are keyed by.
    """

    ids: list[str]
    structures: list["Structure | None"]
    source: str
    problems: list[str | None] = field(default_factory=list)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.problems:
            self.problems = [structure_problem(s) if s is not None else "no structure" for s in self.structures]
        if not self.fingerprint:
            from pipeline.common.hashing import structure_hash

            self.fingerprint = fingerprint([self.ids, [structure_hash(s) if s is not None else "-"
                                                       for s in self.structures]])

    def __len__(self) -> int:
        return len(self.structures)

    def require_some_usable(self) -> None:
        """Raise :class:`InputError` when no structure of the input can be used (nothing to work on)."""
        if self.structures and all(p is not None for p in self.problems):
            raise InputError(f"{self.source}: none of the {len(self)} structures can be used "
                             f"(e.g. {self.ids[0]}: {self.problems[0]}); fix the input")

    def usable(self, max_z: int | None = None) -> list[str | None]:
        """Per structure: None if usable (also under ``max_z``), else the reason it is not."""
        return [p if p is not None or max_z is None else structure_problem(s, max_z)
                for p, s in zip(self.problems, self.structures)]


def read_crystal_input(source: str | os.PathLike, split: str | None = None,
                       limit: int | None = None) -> CrystalInput:
    """Structures from a folder of CIF files, a CDVAE-format CSV (``cif`` column) or a named
    data set split (``perov_5`` + ``split``; also written ``perov_5:test``).

    A CIF in a folder that cannot be used is one item with its reason in ``problems``; an input
    that cannot be read at all raises :class:`~structures.errors.InputError` naming it.
    """
    from structures.data import CRYSTAL_DATASETS, SPLITS, load_crystals, resolve_dataset

    src = str(source)
    name, _, sp = src.partition(":")
    if name in CRYSTAL_DATASETS and not Path(src).exists():
        split = sp or split
        if not split:
            raise InputError(f"data set {name!r} needs a split: write {name}:test (or val/train)")
        if split not in SPLITS:
            raise InputError(f"data set {name!r} has no split {split!r}: write {name}:test (or val/train)")
        csv = resolve_dataset(name, split)
        ds = load_crystals(name, split, limit=limit)
        return CrystalInput(_ids_from_props(ds.properties, len(ds), f"{name}_{split}"), ds.structures,
                            f"{name}:{split}", fingerprint=fingerprint([Path(csv), limit]))
    path = Path(src).expanduser()
    if os.path.lexists(path) and not path.is_dir() and file_problem(path) is not None:
        raise InputError(f"{path}: {file_problem(path)}")  # a fifo is never opened
    if path.is_dir():
        return _read_cif_dir(path, limit)
    if path.is_file():
        if path.suffix.lower() == ".cif":
            return _read_cif_files([path], str(path))
        if path.name.endswith((".csv", ".csv.xz", ".csv.gz")):
            return _read_csv(path, limit)
        raise InputError(f"{path}: unsupported input; give a folder of .cif files, a .cif, a "
                         "CDVAE-format .csv[.xz] or a data set name such as perov_5:test")
    raise InputError(f"input not found: {src!r} is neither a file, a folder nor a data set "
                     f"({', '.join(CRYSTAL_DATASETS)} with :split)")


def _ids_from_props(props: "pd.DataFrame", n: int, prefix: str) -> list[str]:
    if "material_id" in props.columns:
        ids = [str(x) for x in props["material_id"]]
        if len(set(ids)) == n:
            return ids
    return [f"{prefix}_{i}" for i in range(n)]


def _read_cif_dir(path: Path, limit: int | None) -> CrystalInput:
    try:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif")  # special files become rows
    except OSError as exc:
        raise InputError(f"{path}: cannot list the folder ({exc.strerror})") from None
    if not files:
        raise InputError(f"{path}: no .cif files in this folder")
    return _read_cif_files(files[:limit] if limit else files, str(path))


def parse_cif_text(text: str) -> tuple["Structure | None", str | None]:
    """A structure from CIF text, or None and why not (unreadable, incomplete, non-physical)."""
    import warnings

    from pymatgen.core import Structure

    problem = cif_text_problem(text)
    if problem is not None:
        return None, problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_str(text, fmt="cif")
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for bad CIFs
        return None, f"not a CIF that pymatgen can read ({type(exc).__name__}: {str(exc)[:120]})"
    problem = formula_problem(text, s) or structure_problem(s)
    return (None, problem) if problem is not None else (s, None)


def _read_cif_files(files: list[Path], source: str) -> CrystalInput:
    ids, structures, problems, blobs = [], [], [], []
    for f in files:
        ident, s = safe_id(f.stem), None  # ids name output files: safe on every file system (structures.ids)
        problem = file_problem(f)  # a fifo, a dangling link, a folder named x.cif: a row, never opened
        try:
            blob = f.read_bytes() if problem is None else b""
        except OSError as exc:
            blob, problem = b"", f"cannot read the file ({exc.strerror})"
        if problem is None:
            try:
                s, problem = parse_cif_text(blob.decode("utf-8"))
            except UnicodeDecodeError:
                problem = "not a UTF-8 text file"
        ids.append(ident)
        structures.append(s)
        problems.append(problem)
        blobs.append(blob)
    return CrystalInput(ids, structures, source, problems, fingerprint([ids, blobs]))


def _read_csv(path: Path, limit: int | None) -> CrystalInput:
    """A CDVAE-format CSV: one item per row; a row whose CIF cannot be used is an item with its reason."""
    import pandas as pd

    try:
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the file is empty; give a CDVAE-format CSV (a 'cif' column)")
        df = pd.read_csv(path, nrows=limit)
    except InputError:
        raise
    except pd.errors.EmptyDataError:  # e.g. an empty compressed file
        raise InputError(f"{path}: the CSV holds no header and no rows; give a CDVAE-format CSV") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for broken files
        why = " ".join(str(exc).split())[:120]
        raise InputError(f"{path}: not a readable CSV ({type(exc).__name__}: {why}); give a CDVAE-format CSV") from None
    if "cif" not in df.columns:
        raise InputError(f"{path}: no 'cif' column (columns: {', '.join(map(str, df.columns))[:200]}); "
                         "expected the CDVAE format")
    parsed = [parse_cif_text(c) if isinstance(c, str) else (None, "empty 'cif' cell") for c in df["cif"]]
    ids = _ids_from_props(df, len(df), path.name.split(".")[0])
    return CrystalInput(ids, [s for s, _ in parsed], str(path), [p for _, p in parsed],
                        fingerprint([path, limit]))
