"""Reading what a user gives for proteins: one-letter sequences, FASTA files, structure files or folders of them,
and chains given in Python. Bad input raises :class:`~structures.errors.InputError` naming the argument it was
given as; a path that is not a regular file (fifo, folder, dangling link) is refused without being opened; every
chain read passes :func:`structures.proteins.checks.checked`; names become :func:`structures.ids.safe_id` ids.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from structures.data import ProteinChain
from structures.errors import InputError
from structures.ids import safe_id
from structures.proteins.checks import checked, file_problem
from structures.proteins.io import FORMATS, BackboneChain, StructureFileError, read_chains
from structures.proteins.residue_constants import RESTYPES


def is_structure_name(path: Path) -> bool:
    """The name ends in a suffix of :data:`FORMATS`, optionally followed by ``.gz``."""
    s = [x.lower() for x in path.suffixes]
    s = s[:-1] if s and s[-1] == ".gz" else s
    return bool(s) and s[-1] in FORMATS


def structure_files(folder: Path, special: bool = False) -> list[Path]:
    """Structure files of a folder (suffixes of :data:`FORMATS`, optionally ``.gz``), sorted by name; with
    ``special``, also the entries with such a name that are not regular files (dangling links, fifos, folders,
    ...: see :func:`~structures.proteins.checks.file_problem`), so that a batch can report them."""
    try:
        return sorted(p for p in folder.iterdir() if is_structure_name(p) and (special or file_problem(p) is None))
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror})") from None


def check_sequence(argument: str, sequence: object) -> str:
    """A one-letter amino-acid sequence (the 20 standard letters, any case), upper-cased."""
    seq = sequence.strip().upper() if isinstance(sequence, str) else ""
    if not seq or set(seq) - set(RESTYPES):
        raise InputError(f"{argument} must be a sequence of the one-letter codes {RESTYPES}, got "
                         f"{str(sequence)[:40]!r}")
    return seq


def read_fasta(path: str | os.PathLike, argument: str = "path") -> list[tuple[str, str]]:
    """(name, sequence) of every record of a FASTA file; the name is the header's first word (``seq<i>``
    without one); sequences use the 20 standard one-letter codes (``X`` is refused)."""
    p = Path(path).expanduser()
    problem = file_problem(p)
    if problem is not None:
        raise InputError(f"{argument}: {p} is {problem}" if os.path.lexists(p) else
                         f"{argument}: the FASTA file {p} does not exist")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{argument}: cannot read the FASTA file {p} ({type(exc).__name__})") from None
    out: list[tuple[str, str]] = []
    name, parts = None, []
    for line in text.splitlines() + [">"]:
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                out.append((name, check_sequence(f"{argument}: {p}: sequence {name!r}", "".join(parts))))
            name, parts = safe_id((line[1:].split() or [f"seq{len(out)}"])[0]), []
        elif line:
            if name is None:
                raise InputError(f"{argument}: {p} is not a FASTA file (no '>' header before the first sequence)")
            parts.append(line)
    if not out:
        raise InputError(f"{argument}: no sequences in the FASTA file {p}")
    return out


def read_backbones(path: str | os.PathLike, argument: str = "path") -> list[BackboneChain]:
    """Every protein chain of a PDB / mmCIF file, or of each structure file of a folder, each passing
    :func:`~structures.proteins.checks.check_chain` (mapped residues are warned about); chains are named by
    :func:`~structures.ids.safe_id` of ``<file>_<chain>``. Any unusable file or chain is an InputError naming it."""
    p = Path(path).expanduser()
    files = structure_files(p, special=True) if p.is_dir() else [p]
    if not files:
        raise InputError(f"{argument}: no PDB/mmCIF files in the folder {p} (suffixes {', '.join(FORMATS)})")
    out = []
    for f in files:
        try:
            chains = read_chains(f)
        except (StructureFileError, OSError) as exc:
            raise InputError(f"{argument}: {str(exc).splitlines()[0]}") from None
        out.extend(replace(checked(c, f"{argument}: {f}"), name=safe_id(c.name)) for c in chains)
    return out


def as_backbone_chain(argument: str, chain: object) -> BackboneChain:
    """A :class:`BackboneChain` as is, or a data set :class:`~structures.data.ProteinChain` converted (N, CA, C, O
    all present; residue numbers from its ``start_resnum``)."""
    if isinstance(chain, BackboneChain):
        return chain
    if isinstance(chain, ProteinChain):
        first = chain.start_resnum
        return BackboneChain.from_coords(chain.coords, chain.sequence, res_ids=np.arange(first, first + len(chain)),
                                         name=chain.name)
    raise InputError(f"{argument} must be a BackboneChain or a structures.data.ProteinChain, got "
                     f"{type(chain).__name__}")
