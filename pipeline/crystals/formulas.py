"""Chemical formulas, element sets and atom counts for conditioned crystal generation
(:mod:`pipeline.crystals.conditions`).

* :func:`parse_formula`: a strict parser (``BaTiO3``, ``Ba2Ti2O6``, ``C8``, ``Ba(TiO3)2``): integer counts, real
  element symbols H .. Pu only (the element tokens of KO E.2; pymatgen's lenient ``Composition`` would turn ``Xx``
  into a dummy species and ``D`` into H).
* :func:`parse_elements`: ``"Ba,Sr,Ti,O"`` or a sequence of symbols.
* :func:`model_elements`: the elements a model was trained on: ``dataset.elements`` of its record, else read from
  its named training split (perov_5, carbon_24, ... under the data root; cached per file), else unknown (None).
* :func:`formula_atom_counts`: the atom count of each sample of a formula condition: the whole cell, ``z`` formula
  units, or, for a reduced formula without ``z``, drawn from the model's atom-count distribution restricted to
  multiples of the reduced formula's atom count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from structures.crystals.vocabulary import ELEMENT_OFFSET, MAX_Z
from structures.errors import InputError

__all__ = ["Formula", "element_symbol", "element_z", "formula_atom_counts", "model_elements", "parse_elements",
           "parse_formula", "read_formulas"]

_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*|\(|\)\d*)+")
_SYMBOL = re.compile(r"[A-Z][a-z]?")


@lru_cache(maxsize=1)
def _symbols() -> tuple[str, ...]:
    """Element symbols of Z = 1 .. 94 (index Z - 1), as pymatgen spells them."""
    from pymatgen.core.periodic_table import Element

    return tuple(Element.from_Z(z).symbol for z in range(1, MAX_Z + 1))


def element_symbol(z: int) -> str:
    return _symbols()[z - 1]


def element_z(symbol: str, name: str) -> int:
    """Z of an element symbol (H .. Pu, exact spelling); InputError naming ``name`` otherwise."""
    try:
        return _symbols().index(symbol) + 1
    except ValueError:
        from pymatgen.core.periodic_table import Element

        if Element.is_valid_symbol(symbol) and Element(symbol).Z > MAX_Z:
            raise InputError(f"{name}: element {symbol} (Z = {Element(symbol).Z}) is beyond Pu (Z = 94), the last "
                             "element token of the crystal vocabulary") from None
        raise InputError(f"{name}: {symbol!r} is not an element symbol (write e.g. Ba, Ti, O)") from None


def parse_elements(value: Any, name: str) -> tuple[str, ...]:
    """Element symbols from ``"Ba,Sr,Ti,O"`` (commas and/or spaces) or a sequence of symbols: unique, sorted by Z."""
    if isinstance(value, str):
        items = [s for s in re.split(r"[,\s]+", value.strip()) if s]
    elif isinstance(value, Sequence) and all(isinstance(s, str) for s in value):
        items = [s.strip() for s in value]
    else:
        raise InputError(f"{name} must be element symbols, e.g. 'Ba,Ti,O' or ('Ba', 'Ti', 'O'), got {value!r}")
    if not items:
        raise InputError(f"{name}: no element symbols given; write e.g. 'Ba,Ti,O'")
    zs = sorted({element_z(s, name) for s in items})
    return tuple(element_symbol(z) for z in zs)


@dataclass(frozen=True)
class Formula:
    """A composition with integer counts: ``counts`` ((Z, count) sorted by Z), its text as given, and the reduced
    formula's counts (divided by their greatest common divisor, ``factor``)."""

    text: str
    counts: tuple[tuple[int, int], ...]

    @property
    def num_atoms(self) -> int:
        return sum(c for _, c in self.counts)

    @property
    def factor(self) -> int:
        return int(np.gcd.reduce([c for _, c in self.counts]))

    @property
    def reduced_atoms(self) -> int:
        return self.num_atoms // self.factor

    @property
    def is_reduced(self) -> bool:
        return self.factor == 1

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(element_symbol(z) for z, _ in self.counts)

    def element_tokens(self, num_atoms: int) -> np.ndarray:
        """``[num_atoms]`` element tokens (ELEMENT_OFFSET + Z - 1) of ``num_atoms / reduced_atoms`` reduced formula
        units, sorted by Z (the canonical atom order of :mod:`structures.crystals.tokens`)."""
        units, rest = divmod(num_atoms, self.reduced_atoms)
        if rest:
            raise ValueError(f"{num_atoms} atoms are not a whole number of {self.reduced_atoms}-atom formula units")
        zs = [z for z, c in self.counts for _ in range(c // self.factor * units)]
        return ELEMENT_OFFSET + np.asarray(zs, dtype=np.int64) - 1


def parse_formula(text: Any, name: str) -> Formula:
    """A :class:`Formula` from ``BaTiO3``, ``Ba2Ti2O6``, ``C8`` or ``Ba(TiO3)2`` (spaces ignored; integer counts;
    symbols H .. Pu); InputError naming ``name`` otherwise."""
    if not isinstance(text, str):
        raise InputError(f"{name} must be a chemical formula such as 'BaTiO3', got {text!r} ({type(text).__name__})")
    compact = re.sub(r"\s+", "", text)
    if not compact or not _FORMULA.fullmatch(compact):
        raise InputError(f"{name}: {text!r} is not a chemical formula with integer counts (write e.g. BaTiO3, "
                         "Ba2Ti2O6, C8)")
    for symbol in _SYMBOL.findall(compact):
        element_z(symbol, name)
    if re.search(r"(?<![0-9])0+(?![0-9])", compact):
        raise InputError(f"{name}: {text!r} has a count of 0; leave that element out")
    from pymatgen.core import Composition

    try:
        comp = Composition(compact)
    except (ValueError, KeyError) as exc:  # unbalanced parentheses and the like
        raise InputError(f"{name}: {text!r} is not a chemical formula ({exc})") from None
    counts = {}
    for el, amount in comp.items():
        if abs(amount - round(amount)) > 1e-9 or round(amount) < 1:
            raise InputError(f"{name}: {text!r} has a non-integer count of {el}")
        counts[el.Z] = int(round(amount))
    return Formula(text.strip(), tuple(sorted(counts.items())))


def read_formulas(path: Any, name: str = "formulas") -> list[str]:
    """The formulas of a text file, one per line (blank lines and ``#`` comments ignored), each checked with
    :func:`parse_formula`; InputError naming ``name``, the file and the line otherwise."""
    from structures.validate import check_path

    file = check_path(name, path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{name}: {file} not found; give a text file with one formula per line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot read {file} as UTF-8 text ({type(exc).__name__}); give a text file with "
                         "one formula per line") from None
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(parse_formula(line, f"{name} {file}:{i}").text)
    if not out:
        raise InputError(f"{name}: {file} holds no formula (one per line; # starts a comment)")
    return out


def model_elements(model: Any) -> frozenset[int] | None:
    """Z of every element a crystal model was trained on: the record's ``dataset.elements`` (symbols), else the
    elements of its named training split under the data root (cached per file), else None (unknown: a model
    trained on a CSV of its own, or a split that is not on this machine)."""
    ds = model.record.get("dataset", {}) if isinstance(model.record, dict) else {}
    if ds.get("elements"):
        return frozenset(element_z(s, "model record dataset.elements") for s in ds["elements"])
    from structures.data import CRYSTAL_DATASETS, DataNotFoundError, resolve_dataset

    if ds.get("name") not in CRYSTAL_DATASETS or not ds.get("split"):
        return None
    try:
        path = resolve_dataset(ds["name"], ds["split"])
    except (DataNotFoundError, ValueError):
        return None
    st = path.stat()
    return _csv_elements(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=8)
def _csv_elements(path: str, size: int, mtime: int) -> frozenset[int]:
    """Z of the elements in a CDVAE CSV: from each CIF's ``_chemical_formula_sum`` (pymatgen writes it), else by
    parsing the CIF (``size`` and ``mtime`` key the cache)."""
    import pandas as pd

    cifs = pd.read_csv(Path(path), usecols=["cif"])["cif"].astype(str)
    found: set[str] = set()
    for cif in cifs:
        m = re.search(r"_chemical_formula_sum\s+'?([^'\n]+)", cif)
        if m:
            found.update(_SYMBOL.findall(m.group(1)))
        else:
            from pymatgen.core import Structure

            try:
                found.update(el.symbol for el in Structure.from_str(cif, fmt="cif").composition.elements)
            except Exception:  # noqa: BLE001 - a row training skipped as well
                continue
    return frozenset(z for z in (_symbols().index(s) + 1 for s in found if s in _symbols()))


def formula_atom_counts(formula: Formula, z: int | None, distribution: np.ndarray, n: int,
                        rng: np.random.Generator, name: str) -> np.ndarray:
    """``[n]`` atom counts for a formula: ``z`` reduced formula units when ``z`` is given; the whole cell for a
    formula that is not its own reduced formula (``Ba2Ti2O6``: 10 atoms); for a reduced formula (``BaTiO3``, ``C``)
    without ``z``, drawn from ``distribution`` (p(a), index = a) restricted to multiples of its atom count.
    InputError (naming ``name``) when no multiple fits: it lists the counts the model knows."""
    per_unit = formula.reduced_atoms
    if z is not None:
        return np.full(n, z * per_unit, dtype=np.int64)
    if not formula.is_reduced:
        return np.full(n, formula.num_atoms, dtype=np.int64)
    p = np.asarray(distribution, dtype=np.float64)
    counts = np.arange(len(p))
    keep = (counts % per_unit == 0) & (counts > 0) & (p > 0)
    if not keep.any():
        known = ", ".join(str(a) for a in counts[p > 0]) or "none"
        raise InputError(f"{name}: the model knows crystals of {known} atoms, none a multiple of the "
                         f"{per_unit} atoms of {formula.text}; give z (formula units) or a formula with more atoms")
    q = np.where(keep, p, 0.0)
    return rng.choice(len(q), size=n, p=q / q.sum()).astype(np.int64)
