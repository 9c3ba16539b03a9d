"""Backbones to score and reference sets, read from PDB / mmCIF folders or given in Python.

Every chain is judged by :func:`structures.proteins.checks.check_chain` (finite coordinates in a physical box,
N, CA and C at every residue, known residues; modified ones such as MSE are read as their parent and warned
about). In a folder, an entry with a structure suffix that cannot be used (not a regular file: a dangling link,
a symlink loop, a fifo, a folder; unreadable; no amino acids; failing the checks) is one item with its reason
and the batch goes on; non-regular files are never opened. The folder itself must exist and hold at least one
such entry, and a single file given directly must be usable, else :class:`~structures.errors.InputError`.
Each file contributes its first protein chain (generated samples are single chains). Identifiers are
:func:`~structures.ids.safe_id` of the file name before its first dot, checked for clashes before any work;
the input fingerprint hashes file *bytes*.

:func:`as_protein_input` takes what a caller has: a path, BackboneChains or data set ProteinChains (a list, or a
dict id -> chain), a previous generation result (its ids kept) or a :class:`ProteinInput`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.common.run import fingerprint
from structures.cache import cache_key
from structures.data import ProteinChain
from structures.errors import InputError
from structures.ids import safe_id
from structures.proteins.checks import check_chain, file_problem, warn_notes
from structures.proteins.inputs import as_backbone_chain, structure_files
from structures.proteins.io import FORMATS, BackboneChain, StructureFileError, read_chain

MIN_LENGTH = 3  # residues needed for TM-align / DSSP / MPNN


@dataclass
class ProteinInput:
    """Backbones with one id each; ``problems[i]`` is None for a usable chain, else why not (the chain is
    then None). ``fingerprint``: content hash of the input (run folders are keyed by it)."""

    ids: list[str]
    chains: list[BackboneChain | None]
    source: str
    problems: list[str | None] = field(default_factory=list)
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.problems:
            self.problems = [chain_problem(c) for c in self.chains]
        if not self.fingerprint:
            hashes = [backbone_hash(c) if c is not None else "-" for c in self.chains]
            self.fingerprint = fingerprint([self.ids, hashes])

    def __len__(self) -> int:
        return len(self.chains)

    def usable(self) -> list[int]:
        return [i for i, p in enumerate(self.problems) if p is None]


def chain_problem(chain: BackboneChain | None) -> str | None:
    """Why a chain cannot be scored (:func:`~structures.proteins.checks.check_chain`, or too short), or None."""
    if chain is None:
        return "no structure"
    problem = check_chain(chain).problem
    if problem is None and len(chain) < MIN_LENGTH:
        problem = f"{len(chain)} residues; at least {MIN_LENGTH} are needed"
    return problem


def backbone_hash(chain: BackboneChain) -> str:
    """Content hash of a backbone: coordinates (float32, 0.001 A grid), atom mask, sequence, residue numbers."""
    x = chain.coords if chain.coords.ndim == 3 else chain.coords[0]
    q = np.round(np.nan_to_num(np.asarray(x, np.float64)) * 1000).astype(np.int64)
    return cache_key([q.tobytes().hex(), np.asarray(chain.atom_mask, np.uint8).tobytes().hex(), chain.sequence,
                      np.asarray(chain.res_ids, np.int64).tobytes().hex()], length=32)


def from_chains(chains: Sequence[BackboneChain], ids: Sequence[str] | None = None,
                source: str = "python") -> ProteinInput:
    """Backbones given in Python (e.g. generated samples)."""
    chains = list(chains)
    names = list(ids) if ids is not None else [c.name or f"s{i:06d}" for i, c in enumerate(chains)]
    if len(names) != len(chains):
        raise InputError(f"{len(names)} ids for {len(chains)} backbones")
    if len(set(names)) != len(names):
        raise InputError("backbone ids must be unique (they name the table rows)")
    return ProteinInput(names, chains, source)


def read_protein_input(source: str | os.PathLike, limit: int | None = None) -> ProteinInput:
    """Backbones from a folder of PDB/mmCIF files or one file (see the module docstring)."""
    path = Path(source).expanduser()
    single = not path.is_dir()
    if not single:
        files = structure_files(path, special=True)
        if not files:
            raise InputError(f"{path}: no PDB/mmCIF files in this folder (suffixes {', '.join(FORMATS)}, "
                             "optionally .gz)")
    elif os.path.lexists(path):
        problem = file_problem(path)
        if problem is not None:
            raise InputError(f"{path} is {problem}")
        files = [path]
    else:
        raise InputError(f"input not found: {str(source)!r} is neither a folder of PDB/mmCIF files nor a file")
    files = files[:limit] if limit else files
    ids = [safe_id(f.name.split(".")[0]) for f in files]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{path}: two structure files share the id {dup!r} (file name before the first dot); "
                         "rename one")
    chains, problems, blobs = [], [], []
    for f in files:
        chain, problem, blob = _read_one(f)
        if single and problem is not None:
            raise InputError(f"{f}: {problem}")
        chains.append(chain if problem is None else None)
        problems.append(problem)
        blobs.append(blob)
    return ProteinInput(ids, chains, str(path), problems, fingerprint([ids, blobs]))


def _read_one(f: Path) -> tuple[BackboneChain | None, str | None, bytes]:
    """The first chain of one structure file, why it cannot be used (or None), and the file's bytes (b"" when
    it is not a regular file: such a file is never opened). Modified residues read as their parent are warned."""
    problem, blob = file_problem(f), b""
    if problem is not None:
        return None, f"unreadable: {problem}", blob
    try:
        blob = f.read_bytes()
        chain = read_chain(f)
    except (StructureFileError, OSError, UnicodeError) as exc:
        return None, f"unreadable: {str(exc).replace(str(f) + ': ', '')[:200]}", blob
    problem = chain_problem(chain)
    if problem is None:
        warn_notes(str(f), check_chain(chain).notes)
    return chain, problem, blob


def as_protein_input(backbones: Any, limit: int | None = None, argument: str = "backbones") -> ProteinInput:
    """A :class:`ProteinInput` from a folder / file path, a :class:`ProteinInput`, a generation result (ids kept), a
    dict id -> chain, or a list of :class:`BackboneChain` / data set :class:`ProteinChain` (ids: their names);
    ``limit``: only the first N. Anything else raises :class:`InputError` naming ``argument``."""
    if isinstance(backbones, ProteinInput):
        return backbones
    if isinstance(backbones, (str, os.PathLike)):
        try:
            return read_protein_input(backbones, limit=limit)
        except InputError as exc:
            raise InputError(f"{argument}: {exc}") from None
    ids = None
    if isinstance(backbones, dict):
        ids, chains = list(backbones), list(backbones.values())
    elif hasattr(backbones, "chains") and hasattr(backbones, "ids") and isinstance(backbones.chains, list):
        ids, chains = list(backbones.ids), backbones.chains  # a GeneratedProteins
    elif isinstance(backbones, (BackboneChain, ProteinChain)):
        chains = [backbones]
    elif isinstance(backbones, (list, tuple)):
        chains = list(backbones)
    else:
        raise InputError(f"{argument} must be a PDB/mmCIF file or folder, a list or dict of BackboneChain / "
                         f"ProteinChain, or a generation result; got {str(backbones)[:40]!r} "
                         f"({type(backbones).__name__})")
    if not chains:
        raise InputError(f"{argument} is empty: nothing to score")
    names = ids if ids is not None else [f"{argument}[{i}]" for i in range(len(chains))]
    chains = [as_backbone_chain(n, c) for n, c in zip(names, chains)]
    if ids is not None and not all(isinstance(i, str) and i for i in ids):
        raise InputError(f"{argument}: the ids (dict keys) must be non-empty strings")
    n = limit or len(chains)
    return from_chains(chains[:n], ids[:n] if ids is not None else None)
