"""What a conditioned crystal sample must satisfy: :class:`CrystalConditions`, the one description used by the
sampler (:mod:`pipeline.crystals.conditioning`), the command line and the Python API (docs/conditioning.md).

Conditions act on the KO E.2 token sequence ``[6 lattice | (element, x, y, z) per atom]``:

* ``formula`` (+ ``z``): crystal structure prediction. The atom count and the element tokens
  (ELEMENT_OFFSET + Z - 1, sorted by Z: the canonical atom order; the DiT is permutation invariant over atoms) are
  revealed and fixed; lattice and coordinates are generated. A reduced formula (``BaTiO3``, ``C``) takes ``z``
  formula units, or, without ``z``, a count drawn from the model's atom-count distribution restricted to
  multiples of its atom count; a formula that is not reduced (``Ba2Ti2O6``, ``C8``) is the whole cell unless ``z``
  is given (then ``z`` reduced units).
* ``elements``: the element tokens are restricted to this set at every step (the sampler's ``allowed`` mask, so
  the rates themselves are restricted); ``required``: each of these elements appears at least once (presence
  guidance, Nisonoff et al. 2024; mask-path models only). With a formula both only have to agree with it.
* ``seed``: a structure (pymatgen, ASE, or a CIF file) whose atom count is the count. ``start_time`` t0 in (0, 1):
  refinement: its tokens are drawn from the path p_t0(. | seed) and sampled from t0 to 1; ``fix_lattice``: its 6
  lattice tokens are revealed; ``fix_sites``: indices of the seed's sites **in the order they are given** (the
  structure's own site order, for a P1 CIF the order of its atom loop; 0-based), whose element and coordinate
  tokens are revealed. Revealed tokens on a mask path are in distribution (every token was masked independently in
  training) and kept fixed: exact inpainting (KO section 3). On the metric coordinate path (the carbon_24 model)
  coordinates start uniform, so a revealed coordinate at t < 1 is not: it is redrawn from p_t(. | value) at every
  step instead (GM Prop. 1, the sampler's ``replace``).
* ``targets`` with ``predictor``, ``guidance`` strength gamma and ``guidance_method``: predictor guidance, rates
  reweighted by (p(y | x', t) / p(y | x, t))^gamma (Nisonoff et al. 2024 eq. 7), y the product of the targets'
  likelihoods (:mod:`pipeline.crystals.targets`). Needs closed-form marginal rates: mask-path models only.

Checks that need no model run when a :class:`CrystalConditions` is made; :meth:`CrystalConditions.check_model`
adds those against a model (elements it never saw, more atoms than it holds, a predictor for another data set).
Every failure is an :class:`~structures.errors.InputError` naming the field.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from pipeline.crystals.formulas import (Formula, element_symbol, element_z, formula_atom_counts, model_elements,
                                        parse_elements, parse_formula)
from structures.crystals.vocabulary import ELEMENT_OFFSET
from structures.errors import InputError
from structures.validate import check_bool, check_choice, check_float, check_int, check_instance

__all__ = ["GUIDANCE_METHODS", "CrystalConditions", "SeedCrystal", "load_guidance_predictor", "seed_crystal"]

GUIDANCE_METHODS = ("first_order", "exact")
_NAME = "CrystalConditions"


@dataclass(frozen=True)
class SeedCrystal:
    """A seed structure in tokens: ``tokens`` ``[6 + 4a]`` (canonical cell and atom order), ``slots[i]``: the atom
    slot of the structure's site i, ``source``: where it came from (file, or its formula)."""

    tokens: np.ndarray
    slots: tuple[int, ...]
    source: str
    formula: str

    @property
    def num_atoms(self) -> int:
        return len(self.slots)

    def element_zs(self) -> set[int]:
        return {int(t) - ELEMENT_OFFSET + 1 for t in self.tokens[6::4]}


def seed_crystal(value: Any, name: str) -> SeedCrystal:
    """A :class:`SeedCrystal` from a pymatgen Structure, an ASE Atoms or a file holding one structure (a CIF);
    InputError naming ``name`` when it cannot be read or has no tokens (:func:`structures.crystals.tokens
    .encode_batch`'s EncodeError)."""
    from pipeline.crystals.inputs import as_crystal_input, as_structure
    from structures.crystals.tokens import EncodeError, canonical_arrays, fracs_to_ids, tokenize_arrays

    if isinstance(value, (str, os.PathLike)):
        inp = as_crystal_input(value, name)
        if len(inp) != 1:
            raise InputError(f"{name}: {inp.source} holds {len(inp)} structures; give one")
        if inp.problems[0]:
            raise InputError(f"{name}: {os.fspath(value)}: {inp.problems[0]}")
        structure, source = inp.structures[0], os.fspath(value)
    else:
        structure = as_structure(value, name)
        source = "structure"
    try:
        canon = canonical_arrays([structure])
        _, batch, errors = tokenize_arrays(canon)
    except EncodeError as exc:
        raise InputError(f"{name}: {exc}") from None
    if errors[0]:
        raise InputError(f"{name}: {structure.formula}: {errors[0]}")
    a = len(structure)
    tokens = batch.tokens[0, : 6 + 4 * a]
    # the canonical cell keeps the site order; match each site's 4 tokens to a canonical slot
    own = np.concatenate([ELEMENT_OFFSET + canon.atomic_numbers[0, :a, None] - 1, fracs_to_ids(canon.frac[0, :a])], 1)
    rows = tokens[6:].reshape(a, 4)
    free = np.ones(a, bool)
    slots = []
    for site in own:
        j = int(np.flatnonzero(free & (rows == site).all(1))[0])
        free[j] = False
        slots.append(j)
    formula = re.sub(r"(?<=[A-Za-z])1(?![0-9])", "", structure.composition.formula.replace(" ", ""))
    return SeedCrystal(tokens, tuple(slots), source, formula)


@lru_cache(maxsize=4)
def load_guidance_predictor(predictor: str) -> Any:
    """The property predictor named by ``predictor`` (:func:`pipeline.crystals.predictor.load_predictor`),
    loaded once per process."""
    from pipeline.crystals.predictor import load_predictor

    return load_predictor(predictor)


@dataclass(frozen=True)
class CrystalConditions:
    """Conditions on one set of samples (module doc). Every field is optional; combinations that cannot hold
    together (a formula with a seed, ``fix_sites`` without a seed, targets without a predictor, ...) are refused
    when made."""

    formula: str | None = None
    z: int | None = None
    elements: Any = None  # "Ba,Sr,Ti,O" or a sequence of symbols -> tuple sorted by Z
    required: Any = ()  # the same spellings; each must appear at least once
    seed: Any = None  # pymatgen Structure, ASE Atoms or a CIF path
    start_time: float | None = None
    fix_lattice: bool = False
    fix_sites: tuple[int, ...] = ()
    targets: tuple[Any, ...] = ()  # PropertyTarget or strings such as "heat_ref<=-1.5"
    guidance: float = 1.0
    predictor: str | os.PathLike | None = None
    guidance_method: str = "first_order"
    _formula: Formula | None = field(default=None, init=False, repr=False, compare=False)
    _seed: SeedCrystal | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        if self.formula is not None:
            put("_formula", parse_formula(self.formula, f"{_NAME}.formula"))
        if self.z is not None:
            check_int(f"{_NAME}.z", self.z, minimum=1)
            if self.formula is None:
                raise InputError(f"{_NAME}.z: formula units need a formula; give formula too")
        if self.elements is not None:
            put("elements", parse_elements(self.elements, f"{_NAME}.elements"))
        put("required", parse_elements(self.required, f"{_NAME}.required") if self.required not in ((), None, [])
            else ())
        if self.required and len(self.required) > 10:
            raise InputError(f"{_NAME}.required: at most 10 required elements, got {len(self.required)}")
        self._check_elements()
        self._check_seed(put)
        self._check_guidance(put)

    def _check_elements(self) -> None:
        allowed = set(self.elements or ())
        missing = [s for s in self.required if self.elements is not None and s not in allowed]
        if missing:
            raise InputError(f"{_NAME}.required: {', '.join(missing)} not among the allowed elements "
                             f"{', '.join(self.elements)}; add them to elements")
        if self._formula is not None:
            own = set(self._formula.elements)
            if self.elements is not None and not own <= allowed:
                raise InputError(f"{_NAME}.elements: the formula {self.formula} has "
                                 f"{', '.join(sorted(own - allowed))}, not among the allowed elements")
            if not set(self.required) <= own:
                raise InputError(f"{_NAME}.required: {', '.join(sorted(set(self.required) - own))} not in the "
                                 f"formula {self.formula}")

    def _check_seed(self, put: Any) -> None:
        check_bool(f"{_NAME}.fix_lattice", self.fix_lattice)
        sites = self.fix_sites
        if isinstance(sites, (int, np.integer)) and not isinstance(sites, bool):
            sites = (sites,)
        if isinstance(sites, (str, bytes)) or not isinstance(sites, (tuple, list)):
            raise InputError(f"{_NAME}.fix_sites must be a list of site indices, got {sites!r}")
        sites = tuple(check_int(f"{_NAME}.fix_sites[{i}]", s, minimum=0) for i, s in enumerate(sites))
        if len(set(sites)) != len(sites):
            raise InputError(f"{_NAME}.fix_sites: an index is repeated in {list(sites)}")
        put("fix_sites", tuple(sorted(sites)))
        if self.start_time is not None:
            t0 = check_float(f"{_NAME}.start_time", self.start_time, 0.0, 1.0, strict_minimum=True)
            if t0 >= 1.0:
                raise InputError(f"{_NAME}.start_time must be in (0, 1), got {t0}")
            put("start_time", t0)
        uses = [k for k, v in (("start_time", self.start_time is not None), ("fix_lattice", self.fix_lattice),
                               ("fix_sites", bool(sites))) if v]
        if self.seed is None:
            if uses:
                raise InputError(f"{_NAME}.{uses[0]} needs a seed structure; give seed too")
            return
        if self.formula is not None:
            raise InputError(f"{_NAME}.seed: a seed sets the composition; give either a seed or a formula, not "
                             "both")
        if not uses:
            raise InputError(f"{_NAME}.seed: say what to keep of it: start_time (refine it), fix_lattice or "
                             "fix_sites")
        seed = seed_crystal(self.seed, f"{_NAME}.seed")
        put("_seed", seed)
        bad = [s for s in sites if s >= seed.num_atoms]
        if bad:
            raise InputError(f"{_NAME}.fix_sites: site {bad[0]} does not exist; the seed has {seed.num_atoms} "
                             f"sites (0..{seed.num_atoms - 1})")
        if self.elements is not None:
            kept = {element_symbol(int(seed.tokens[6 + 4 * seed.slots[s]]) - ELEMENT_OFFSET + 1) for s in sites}
            if not kept <= set(self.elements):
                extra = ", ".join(sorted(kept - set(self.elements)))
                raise InputError(f"{_NAME}.fix_sites: the fixed sites hold {extra}, not among the allowed elements")

    def _check_guidance(self, put: Any) -> None:
        from pipeline.crystals.targets import PropertyTarget, parse_target

        targets = self.targets
        if isinstance(targets, (str, PropertyTarget)):
            targets = (targets,)
        if not isinstance(targets, (tuple, list)):
            raise InputError(f"{_NAME}.targets must be a list of targets such as 'heat_ref<=-1.5', got {targets!r}")
        put("targets", tuple(t if isinstance(t, PropertyTarget) else parse_target(t, f"{_NAME}.targets")
                             for t in targets))
        put("guidance", check_float(f"{_NAME}.guidance", self.guidance, 0.0, strict_minimum=True))
        put("guidance_method", check_choice(f"{_NAME}.guidance_method", self.guidance_method, GUIDANCE_METHODS))
        if self.predictor is not None:
            check_instance(f"{_NAME}.predictor", self.predictor, (str, os.PathLike), "a predictor name or file")
            put("predictor", os.fspath(self.predictor))
            if not self.targets:
                raise InputError(f"{_NAME}.predictor: a predictor guides towards targets; give targets too")
        elif self.targets:
            raise InputError(f"{_NAME}.targets: guidance towards targets needs a predictor (a file of "
                             "'genmatch train predictor'); give predictor")

    # ------------------------------------------------------------------------------------------ derived

    @property
    def start(self) -> float:
        """t0 of the time grid: ``start_time``, else 0."""
        return 0.0 if self.start_time is None else self.start_time

    @property
    def guided(self) -> bool:
        """Whether sampling needs guidance: targets, or required elements that a formula does not already fix."""
        return bool(self.targets or (self.required and self._formula is None))

    def guidance_key(self) -> str:
        """What samples guided together must share (JSON; '' without guidance)."""
        if not self.guided:
            return ""
        required = list(self.required) if self._formula is None else []
        return json.dumps([[str(t) for t in self.targets], self.guidance, self.predictor, self.guidance_method,
                           required])

    def elements_z(self) -> dict[str, set[int]]:
        """Z of the elements these conditions reveal or ask for, by field: formula, elements, required, and the
        seed's (all of them when refined from t0, else those of its fixed sites)."""
        zs: dict[str, set[int]] = {}
        if self._formula is not None:
            zs[f"formula: {self._formula.text}"] = {z for z, _ in self._formula.counts}
        for name in ("elements", "required"):
            zs[name] = {element_z(s, _NAME) for s in getattr(self, name) or ()}
        if self._seed is not None and self.start_time is not None:
            zs["seed"] = self._seed.element_zs()
        elif self._seed is not None:
            zs["fix_sites"] = {int(self._seed.tokens[6 + 4 * self._seed.slots[s]]) - ELEMENT_OFFSET + 1
                               for s in self.fix_sites}
        return zs

    def atom_counts(self, model: Any, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``[n]`` atom counts these conditions set (formula, seed), None when they leave it free."""
        if self._seed is not None:
            return np.full(n, self._seed.num_atoms, dtype=np.int64)
        if self._formula is not None:
            return formula_atom_counts(self._formula, self.z, model.atom_count_distribution, n, rng,
                                       f"{_NAME}.formula")
        return None

    def check_model(self, model: Any) -> None:
        """InputError when these conditions cannot be met by ``model`` (a loaded CrystalModel): an element it was
        never trained on, more atoms than it holds, no formula multiple it knows, guidance on a model without
        closed-form rates, a predictor for another data set or without a target property."""
        known = model_elements(model)
        for field_, zs in self.elements_z().items() if known is not None else ():
            unseen = sorted(zs - known)
            if unseen:
                raise InputError(f"{_NAME}.{field_}: the model ({model.dataset or 'this model'}) was never trained "
                                 f"on {', '.join(element_symbol(z) for z in unseen)}; it knows "
                                 f"{', '.join(element_symbol(z) for z in sorted(known))}")
        count = None
        if self._seed is not None:
            count, what = self._seed.num_atoms, "seed"
        elif self._formula is not None and (self.z is not None or not self._formula.is_reduced):
            count, what = (self.z or self._formula.factor) * self._formula.reduced_atoms, "formula"
        if count is not None and count > model.max_atoms:
            what = f"formula: {self._formula.text}" if what == "formula" else what
            raise InputError(f"{_NAME}.{what}: {count} atoms, more than the {model.max_atoms} this model holds")
        if self._formula is not None and count is None:
            formula_atom_counts(self._formula, None, model.atom_count_distribution, 1, np.random.default_rng(0),
                                f"{_NAME}.formula")
        if self.guided and model.coords.metric:
            raise InputError(f"{_NAME}.{'targets' if self.targets else 'required'}: guidance needs the closed-form "
                             "marginal rates of a mask path; this model moves its coordinates on the metric path "
                             "(KO eq. 27), which has none")
        if self.predictor is not None:
            self._check_predictor(model)

    def _check_predictor(self, model: Any) -> None:
        from pipeline.crystals.targets import target_columns

        try:
            pred = load_guidance_predictor(self.predictor)
        except InputError as exc:
            raise InputError(f"{_NAME}.predictor: {exc}") from None
        if getattr(pred, "judge_only", False):
            raise InputError(f"{_NAME}.predictor: {self.predictor} is a benchmark judge, never used for guidance; "
                             "give a predictor trained for guidance")
        if pred.coords.kind != model.coords.kind:
            raise InputError(f"{_NAME}.predictor: {self.predictor} was trained on states of the {pred.coords.kind} "
                             f"coordinate path, the model samples the {model.coords.kind} path; give a predictor "
                             "trained on this model's path")
        if model.dataset and pred.dataset and pred.dataset != model.dataset:
            raise InputError(f"{_NAME}.predictor: {self.predictor} was trained on {pred.dataset}, the model on "
                             f"{model.dataset}; give a predictor for {model.dataset}")
        try:
            target_columns(self.targets, pred.properties)
        except InputError as exc:
            raise InputError(f"{_NAME}.targets: {exc}") from None

    # ------------------------------------------------------------------------------------------ output

    def record(self) -> dict[str, Any]:
        """JSON-able description of the fields that are set (the manifest and the run settings hold it)."""
        rec: dict[str, Any] = {}
        if self.formula is not None:
            rec.update(formula=self._formula.text, z=self.z)
        if self.elements is not None:
            rec["elements"] = list(self.elements)
        if self.required:
            rec["required"] = list(self.required)
        if self._seed is not None:
            rec["seed"] = {"source": self._seed.source, "formula": self._seed.formula,
                           "num_atoms": self._seed.num_atoms, "tokens": self._seed.tokens.tolist()}
            rec.update(start_time=self.start_time, fix_lattice=self.fix_lattice, fix_sites=list(self.fix_sites))
        if self.targets:
            rec.update(targets=[t.to_dict() for t in self.targets], guidance=self.guidance,
                       predictor=self.predictor, guidance_method=self.guidance_method)
        elif self.guided:
            rec["guidance"] = self.guidance
        return rec

    def label(self) -> str:
        """Short text for the manifest's ``condition`` column, e.g. ``BaTiO3 z=1`` or ``seed=BaTiO3 t0=0.5``."""
        parts = []
        if self.formula is not None:
            parts.append(self._formula.text + (f" z={self.z}" if self.z is not None else ""))
        if self.elements is not None:
            parts.append("elements=" + ",".join(self.elements))
        if self.required:
            parts.append("require=" + ",".join(self.required))
        if self._seed is not None:
            parts.append(f"seed={self._seed.formula}")
            if self.start_time is not None:
                parts.append(f"t0={self.start_time:g}")
            if self.fix_lattice:
                parts.append("fix_lattice")
            if self.fix_sites:
                parts.append("fix_sites=" + ",".join(map(str, self.fix_sites)))
        if self.targets:
            parts.append("target=" + ";".join(map(str, self.targets)))
        if self.guided and not math.isclose(self.guidance, 1.0):
            parts.append(f"guidance={self.guidance:g}")
        return " ".join(parts) or "unconditional"
