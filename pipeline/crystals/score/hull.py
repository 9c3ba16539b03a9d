"""Reference convex hulls for energy above hull (E_hull), chosen by the user:

(a) ``ReferenceHull.from_entries_json(path)``: pymatgen ``ComputedEntry`` /
    ``ComputedStructureEntry`` dicts in JSON (``.json`` or ``.json.gz``; a list, or a dict of
    entries such as the MP elemental references ``{symbol: entry}``);
(b) ``ReferenceHull.from_ppd_pickle(path, trusted=True)``: a pymatgen ``PatchedPhaseDiagram``
    pickle (e.g. Matbench Discovery's 2023-02-07 MP hull). Unpickling runs arbitrary code, so it
    is refused unless ``trusted=True`` says the user trusts the file;
(c) ``ReferenceHull.embedded_default(structures)``: MP elemental references plus the CHGNet
    (relaxed) energies of a reference structure set, computed once and cached on disk by content
    hash.

E_hull(x) = E(x)/atom - E_hull(composition of x)/atom, negative below the hull (pymatgen
``get_decomp_and_e_above_hull(..., allow_negative=True)``); no extra correction (CHGNet energies
are MP2020-compatible). For (a) and (c) the hull of each chemical system is built on demand from
the entries whose elements lie inside it (exactly the sub-hull that decides E_hull) and cached.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Composition, Structure
    from pymatgen.entries.computed_entries import ComputedEntry

    from pipeline.common.io import CrystalInput
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.config import CrystalScoreConfig

MP_ELEMENTAL_REFS = Path("mp") / "2023-02-07-mp-elemental-reference-entries.json.gz"


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def mp_elemental_refs_path() -> Path:
    from structures.data import data_root

    root = data_root()
    assert root is not None
    path = root / MP_ELEMENTAL_REFS
    if not path.is_file():
        raise FileNotFoundError(f"MP elemental references not found at {path}; put Matbench Discovery's "
                                "2023-02-07-mp-elemental-reference-entries.json.gz there")
    return path


def load_entries_json(path: str | os.PathLike) -> list["ComputedEntry"]:
    """ComputedEntry / ComputedStructureEntry objects from JSON (list or dict of entry dicts)."""
    from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"hull entries file not found: {path}")
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except (OSError, ValueError, EOFError, zlib.error) as exc:  # UnicodeDecodeError, gzip.BadGzipFile included
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ValueError(f"{path}: not a readable JSON file of entries ({why})") from None
    items = list(data.values()) if isinstance(data, dict) and "@class" not in data else data
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ValueError(f"{path}: holds a JSON {type(data).__name__}, not a list or dict of pymatgen ComputedEntry "
                         "dicts")
    entries = []
    for i, d in enumerate(items):
        try:
            if not isinstance(d, dict):
                raise TypeError(f"a JSON {type(d).__name__}")
            cls = ComputedStructureEntry if "structure" in d else ComputedEntry
            entries.append(cls.from_dict(d))
            if not np.isfinite(entries[-1].energy):
                raise ValueError(f"energy {entries[-1].energy}")
        except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for a bad entry dict
            why = " ".join(str(exc).split())[:120] or type(exc).__name__
            raise ValueError(f"{path}: item {i} is not a pymatgen ComputedEntry dict ({why})") from None
    if not entries:
        raise ValueError(f"{path}: no entries")
    return entries


def _chemsys(composition: "Composition") -> frozenset[str]:
    return frozenset(el.symbol for el in composition.elements)


class ReferenceHull:
    """A reference hull: entries (sub-hulls built per chemical system) or a PatchedPhaseDiagram."""

    def __init__(self, entries: Sequence["ComputedEntry"] | None = None, ppd: Any = None, name: str = ""):
        if (entries is None) == (ppd is None):
            raise ValueError("give either entries or a PatchedPhaseDiagram")
        self.name = name
        self.ppd = ppd
        self.entries = list(entries or [])
        self._by_chemsys: dict[frozenset[str], list[Any]] = {}
        for e in self.entries:
            key = _chemsys(e.composition)
            self._by_chemsys.setdefault(key, []).append(e)
        self._pd_cache: dict[frozenset[str], Any] = {}

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def from_entries_json(cls, path: str | os.PathLike) -> "ReferenceHull":
        return cls(entries=load_entries_json(path), name=f"entries:{Path(path).name}")

    @classmethod
    def from_ppd_pickle(cls, path: str | os.PathLike, trusted: bool = False) -> "ReferenceHull":
        path = Path(path)
        if not trusted:
            raise ValueError(f"{path}: loading a pickle can run arbitrary code; pass trusted=True "
                             "(CLI: --trust-pickle) only for a file you trust, e.g. Matbench Discovery's MP hull")
        if not path.is_file():
            raise FileNotFoundError(f"PatchedPhaseDiagram pickle not found: {path}")
        import pickle

        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            ppd = pickle.load(f)  # noqa: S301 - explicitly trusted by the caller
        if not hasattr(ppd, "get_decomp_and_e_above_hull"):
            raise ValueError(f"{path}: unpickled a {type(ppd).__name__}, not a pymatgen (Patched)PhaseDiagram")
        return cls(ppd=ppd, name=f"ppd:{path.name}")

    @classmethod
    def mp_elemental(cls) -> "ReferenceHull":
        return cls(entries=load_entries_json(mp_elemental_refs_path()), name="mp_elemental_refs")

    @classmethod
    def embedded_default(cls, structures: Sequence["Structure"], model: str = "0.3.0", relax: bool = True,
                         cache_dir: str | os.PathLike | None | bool = None, progress: bool = True,
                         name: str = "reference", queries: Sequence["Composition"] | None = None
                         ) -> "ReferenceHull":
        """MP elemental references + CHGNet energies of ``structures`` (relaxed with FlowMM's settings, fmax
        0.1 eV/A and at most 1,500 FIRE steps, unless ``relax=False``).

        Energies are cached on disk by structure content hash, model and relaxation settings, so
        the reference set is relaxed once. With ``queries`` (the compositions to be scored) only the
        reference structures whose chemical system is a subset of some query's are computed: E_hull of
        a composition depends only on the entries inside its chemical system, so the others cannot
        change any query's E_hull, and the hull is the full one for those queries.
        """
        from pipeline.crystals.score.energies import chgnet_energies
        from pymatgen.entries.computed_entries import ComputedEntry

        if queries is not None:
            systems = {_chemsys(c) for c in queries}
            structures = [s for s in structures if any(_chemsys(s.composition) <= q for q in systems)]
            name = f"{name}[{len(structures)} in the queries' chemical systems]"

        e = chgnet_energies(structures, model=model, relax=relax, cache_dir=cache_dir, progress=progress)
        entries = load_entries_json(mp_elemental_refs_path())
        for i, (s, epa) in enumerate(zip(structures, e)):
            if np.isfinite(epa):
                entries.append(ComputedEntry(s.composition, float(epa) * len(s), entry_id=f"{name}-{i}"))
        return cls(entries=entries, name=f"default:{name}+mp_elemental_refs")

    # -- queries ----------------------------------------------------------------------------
    def facet(self, composition: "Composition") -> list["Composition"] | None:
        """The compositions of the hull phases that ``composition`` decomposes into (the vertices of the hull
        facet beneath it, with a non-zero share), None where the hull has no phase diagram for it."""
        try:
            if self.ppd is not None:
                decomp = self.ppd.get_decomposition(composition)
            else:
                pd = self._phase_diagram(_chemsys(composition))
                if isinstance(pd, Exception):
                    return None
                decomp = pd.get_decomposition(composition)
        except Exception:  # noqa: BLE001 - outside the hull (e.g. an element it lacks)
            return None
        return [e.composition for e, amount in decomp.items() if amount > 1e-8]

    def coverage_gap(self, composition: "Composition") -> str | None:
        """None where the hull covers ``composition``, else why not (a phrase for ``e_hull_note``).

        Covered means the facet of the hull beneath the composition (:meth:`facet`) holds, for each element of
        the composition, a non-elemental compound containing that element; a single element is covered by its
        own reference. A compound of the sample's exact chemical system on the facet covers every element at
        once; two binaries can cover a ternary (NaCl + KCl under Na-K-Cl). Where some element meets the facet
        only as the pure element, the hull there is built from that element's reference alone, E_hull is a
        formation energy in that direction and only a lower bound (a compound the hull lacks could lower the
        hull), e.g. a ternary sample whose system holds one binary compound and no ternary one."""
        els = sorted(_chemsys(composition))
        phases = self.facet(composition)
        if phases is None:
            return "not covered: no hull for this chemical system"
        if len(els) == 1:
            return None
        bare = [el for el in els if not any(len(c.elements) >= 2 and el in _chemsys(c) for c in phases)]
        if not bare:
            return None
        if len(bare) == len(els):
            return "not covered: the hull has no compound under this composition (E_hull is a lower bound)"
        return (f"not covered: the hull has no compound with {', '.join(bare)} under this composition "
                "(E_hull is a lower bound)")

    def covers(self, compositions: Sequence["Composition"]) -> np.ndarray:
        """[N] bool: the hull covers each composition (:meth:`coverage_gap` is None)."""
        return np.array([self.coverage_gap(c) is None for c in compositions], dtype=bool)

    def _phase_diagram(self, chemsys: frozenset[str]) -> Any:
        if chemsys not in self._pd_cache:
            from pymatgen.analysis.phase_diagram import PhaseDiagram

            sub = []
            for k in range(1, len(chemsys) + 1):
                for combo in itertools.combinations(sorted(chemsys), k):
                    sub.extend(self._by_chemsys.get(frozenset(combo), []))
            missing = [el for el in chemsys if frozenset([el]) not in self._by_chemsys]
            self._pd_cache[chemsys] = (ValueError(f"no elemental reference for {', '.join(sorted(missing))}")
                                       if missing else PhaseDiagram(sub))
        return self._pd_cache[chemsys]

    def e_above_hull(self, compositions: Sequence["Composition"], energies_per_atom: Sequence[float]
                     ) -> tuple[np.ndarray, list[str]]:
        """E_hull (eV/atom) per query, NaN where it cannot be computed (reason in the 2nd list)."""
        from pymatgen.analysis.phase_diagram import PDEntry

        out = np.full(len(compositions), np.nan)
        why = [""] * len(compositions)
        for i, (comp, epa) in enumerate(zip(compositions, energies_per_atom)):
            if not np.isfinite(epa):
                why[i] = "no energy"
                continue
            entry = PDEntry(comp, float(epa) * comp.num_atoms)
            try:
                if self.ppd is not None:
                    out[i] = self.ppd.get_decomp_and_e_above_hull(entry, allow_negative=True)[1]
                else:
                    pd = self._phase_diagram(frozenset(el.symbol for el in comp.elements))
                    if isinstance(pd, Exception):
                        raise pd
                    out[i] = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)[1]
            except Exception as exc:  # noqa: BLE001 - one composition outside the hull
                why[i] = f"hull: {exc}"
        return out, why


def read_hull_file(config: "CrystalScoreConfig") -> ReferenceHull | None:
    """The hull of a ``config.hull`` that names a file, read now (before a run folder is made); None for a
    named hull or a :class:`ReferenceHull`. A file that cannot be read as a hull raises
    :class:`~structures.errors.InputError` saying why."""
    from pipeline.crystals.names import NAMED_HULLS
    from structures.errors import InputError

    h = config.hull
    if h is None or isinstance(h, ReferenceHull) or str(h) in NAMED_HULLS:
        return None
    p = Path(str(h)).expanduser()
    try:
        if p.name.endswith((".pkl", ".pkl.gz", ".pickle")):
            return ReferenceHull.from_ppd_pickle(p, trusted=config.trust_pickle)
        return ReferenceHull.from_entries_json(p)
    except Exception as exc:  # noqa: BLE001 - a trusted pickle can raise anything; the messages name the file
        why = " ".join(str(exc).split())[:300] or type(exc).__name__
        where = "--hull: " if str(p) in why else f"--hull {p}: "
        raise InputError(f"{where}{why}; give a .json[.gz] list of pymatgen ComputedEntry dicts or a "
                         "PatchedPhaseDiagram pickle") from None


def build_hull(config: "CrystalScoreConfig", reference: "CrystalInput | None", compute: "ComputeConfig",
               queries: Sequence["Composition"] | None = None) -> ReferenceHull | None:
    """The hull that ``config.hull`` names (:class:`~pipeline.crystals.score.config.CrystalScoreConfig`), None for
    "none". ``reference``: the structures of ``config.hull_reference`` (read once by the caller); the default hull
    adds their CHGNet energies (computed with ``config.chgnet``) to the MP elemental references, and with
    ``queries`` (the compositions to be scored) only those that can change the queries' E_hull."""
    hull = config.hull
    if hull is None or isinstance(hull, ReferenceHull):
        return hull
    h = str(hull)
    if h == "none":
        return None
    if h == "mp-elements" or (h == "default" and reference is None):
        return ReferenceHull.mp_elemental()
    if h == "default":
        return ReferenceHull.embedded_default([s for s in reference.structures if s is not None], model=config.chgnet,
                                              relax=config.hull_relax, cache_dir=compute.cache_dir,
                                              progress=compute.progress, name=reference.source, queries=queries)
    p = Path(h).expanduser()
    if p.name.endswith((".pkl", ".pkl.gz", ".pickle")):
        return ReferenceHull.from_ppd_pickle(p, trusted=config.trust_pickle)
    return ReferenceHull.from_entries_json(p)
