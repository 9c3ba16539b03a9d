"""Novelty reference sets, described by a small picklable spec and loaded once per worker process.

``ReferenceSpec(kind="default")`` is the 3,000 backbones of the proteins data set
(:func:`structures.data.load_proteins`), ``kind="folder"`` a folder of PDB/mmCIF files (unreadable files
are skipped and counted), ``kind="inline"`` traces given in Python (e.g. the validation's "other 2,800
chains"). Workers receive the spec, not the arrays, and load it on first use (dask workers too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.common.run import fingerprint
from pipeline.proteins.score.tm import Trace
from structures.errors import InputError


@dataclass(frozen=True)
class ReferenceSet:
    """Loaded reference traces with names and lengths [R]."""

    names: list[str]
    traces: list[Trace]
    lengths: np.ndarray
    n_skipped: int = 0


@dataclass(frozen=True)
class ReferenceSpec:
    """Where a reference set comes from (see the module docstring); ``key``: its content fingerprint."""

    kind: str
    path: str | None = None
    limit: int | None = None
    key: str = ""
    inline: tuple[tuple[str, np.ndarray, str], ...] = field(default=(), repr=False, compare=False)

    def describe(self) -> str:
        lim = f", first {self.limit}" if self.limit else ""
        return {"default": f"proteins data set ({self.path}{lim})", "folder": f"PDB folder {self.path}{lim}",
                "inline": f"{len(self.inline)} backbones given in Python"}[self.kind]


def reference_spec(reference: str | None, limit: int | None = None) -> ReferenceSpec | None:
    """Spec of "default" (the proteins data set), a folder path, or None (no novelty)."""
    from structures.data import resolve_dataset

    if reference is None:
        return None
    if reference == "default":
        path = resolve_dataset("proteins")
        return ReferenceSpec("default", str(path), limit, fingerprint(["default", path, limit]))
    from pipeline.proteins.score.inputs import structure_files

    files = structure_files(Path(reference).expanduser())
    files = files[:limit] if limit else files
    if not files:
        raise InputError(f"{reference}: the novelty reference folder holds no PDB/mmCIF files")
    return ReferenceSpec("folder", str(Path(reference).expanduser()), limit,
                         fingerprint(["folder", [f.name for f in files], files]))


def inline_spec(names: list[str], traces: list[Trace]) -> ReferenceSpec:
    """Spec of traces given in Python (carried inside the spec)."""
    items = tuple((n, np.asarray(t.ca, np.float64), t.sequence) for n, t in zip(names, traces))
    key = fingerprint(["inline", [[n, ca, s] for n, ca, s in items]])
    return ReferenceSpec("inline", None, None, key, items)


_LOADED: dict[str, ReferenceSet] = {}


def load_reference(spec: ReferenceSpec) -> ReferenceSet:
    """The reference set of a spec, cached per process by its key."""
    if spec.key in _LOADED:
        return _LOADED[spec.key]
    skipped = 0
    if spec.kind == "inline":
        names = [n for n, _, _ in spec.inline]
        traces = [Trace(ca, s) for _, ca, s in spec.inline]
    elif spec.kind == "default":
        from structures.data import load_proteins

        ds = load_proteins(spec.path)
        n = min(len(ds), spec.limit or len(ds))
        chains = [ds[i] for i in range(n)]
        names = [c.name for c in chains]
        traces = [Trace(c.ca.astype(np.float64), c.sequence) for c in chains]
    else:
        from pipeline.proteins.score.inputs import read_protein_input

        inp = read_protein_input(spec.path, limit=spec.limit)
        names, traces = [], []
        for i in inp.usable():
            c = inp.chains[i]
            ok = c.backbone_complete
            names.append(inp.ids[i])
            traces.append(Trace(c.coords[ok, 1].astype(np.float64), "".join(np.array(list(c.sequence))[ok])))
        skipped = len(inp) - len(names)
    if not traces:
        raise InputError(f"{spec.describe()}: no usable reference backbone")
    ref = ReferenceSet(names, traces, np.array([len(t.ca) for t in traces]), skipped)
    _LOADED.clear()  # one reference set per process at a time
    _LOADED[spec.key] = ref
    return ref
