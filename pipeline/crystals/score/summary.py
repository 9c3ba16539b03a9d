"""The crystal scorer's summary as typed records (``summary.json``).

:class:`ScoreSummary` holds the CDVAE metrics of :func:`pipeline.crystals.score.score.score_structures`, the
provenance of its inputs (``input``, ``reference_source``,
``n_input``, ``n_unusable``) and the rates over all samples (``<rate>_all``, :meth:`ScoreSummary.add_rates_over_all`);
``stability`` (a :class:`StabilitySummary`: hull, E_hull, stable rate, hull coverage, S.U.N.) is None when
no hull was given.

JSON layout: one flat object, as before the records were typed. The stability fields sit beside the
CDVAE metrics (``"stable_rate"``, not ``"stability": {"stable_rate": ...}``), and a field left None
(no note, no stability, no provenance, no ``_all`` rates, no S.U.N.) is left out; ``from_dict`` puts the
stability fields back into their record, so ``ScoreSummary.from_json(s.to_json()) == s`` (NaN aside:
NaN never equals itself, the JSON text round-trips).
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, TypeVar

from pipeline.common.records import JsonRecord

S = TypeVar("S", bound="ScoreSummary")

RATES_OVER_ALL = ("struct_valid", "comp_valid", "valid", "cov_precision")


def _required(f: Field) -> bool:  # type: ignore[type-arg]
    return f.default is MISSING and f.default_factory is MISSING


def _flat(rec: Any) -> dict[str, Any]:
    """Fields in order; an optional field that is None is left out; a nested record is merged in."""
    out: dict[str, Any] = {}
    for f in fields(rec):
        v = getattr(rec, f.name)
        if isinstance(v, JsonRecord):
            out.update(v.to_dict())
        elif v is not None or _required(f):
            out[f.name] = copy.deepcopy(v)
    return out


@dataclass
class StabilitySummary(JsonRecord):
    """E_hull against ``hull`` (stable: E_hull <= ``e_hull_threshold`` and >= 2 elements), uniqueness among
    the stable ones and among all (``unique_rate``), the hull's coverage of the samples (below 100 %
    ``stable_rate`` is an upper bound, :func:`pipeline.crystals.score.stability.hull_coverage`), S.U.N. and
    ``novel_rate`` (None without a training set)."""

    hull: str
    energy_source: str  # "given" or "CHGNet <version> static (given geometries)"
    e_hull_threshold: float
    n_e_hull: int  # samples with a finite E_hull
    e_hull_quantiles: dict[str, float]  # "0.05", "0.25", "0.5", "0.75", "0.95" -> eV/atom ({} without any)
    stable_rate: float
    n_stable: int
    unique_among_stable: float
    hull_coverage: float
    n_hull_covered: int
    n_hull_coverable: int
    stable_rate_is_upper_bound: bool
    n_stable_hull_covered: int
    sun_rate: float | None = None
    n_sun: int | None = None
    unique_rate: float | None = None  # share of the scored samples that are unique (stable or not)
    novel_rate: float | None = None  # share of the scored samples that are novel (with a training set)

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)


@dataclass
class ScoreSummary(JsonRecord):
    """Aggregate metrics of a scored crystal set (``summary.json``); rates are over the scored structures
    unless named ``_all`` (over every sample: a decode failure or unusable input counts as invalid and as
    a COV-P miss)."""

    n_structures: int
    n_reference: int
    dataset: str | None
    struct_valid: float
    comp_valid: float
    valid: float
    cov_recall: float
    cov_precision: float
    struc_cutoff: float
    comp_cutoff: float
    wdist_density: float
    wdist_num_elems: float
    n_wdist_samples: int
    wdist_seed: int
    n_struct_fp_failed: int
    note: str | None = None  # e.g. fewer valid structures than the Wasserstein sample size
    stability: StabilitySummary | None = None
    # provenance of the inputs (score_structures)
    n_input: int | None = None
    n_unusable: int | None = None
    input: str | None = None
    reference_source: str | None = None
    # rates over all samples (add_rates_over_all)
    struct_valid_all: float | None = None
    comp_valid_all: float | None = None
    valid_all: float | None = None
    cov_precision_all: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _flat(self)

    @classmethod
    def from_dict(cls: type[S], d: dict[str, Any]) -> S:
        """From the flat layout of :meth:`to_dict` (a nested ``"stability"`` object is accepted too)."""
        d = dict(d)
        names = {f.name for f in fields(StabilitySummary)}
        st = {k: d.pop(k) for k in list(d) if k in names}
        nested = d.pop("stability", None)
        if nested is not None:
            st = {**(nested.to_dict() if isinstance(nested, StabilitySummary) else nested), **st}
        out = super().from_dict(d)
        if st:
            out.stability = StabilitySummary.from_dict(st)
        return out

    def add_rates_over_all(self: S, n_decoded: int, n_samples: int) -> S:
        """Set the ``<rate>_all`` fields for the ``n_decoded`` scored structures of ``n_samples``: validity and
        COV-P over *all* samples, a decode failure counting as invalid and as a miss (the CDVAE protocol's
        denominator). Nothing is set when ``n_samples`` is 0. Returns ``self``."""
        if n_samples:
            for k in RATES_OVER_ALL:
                setattr(self, f"{k}_all", float(getattr(self, k)) * n_decoded / n_samples)
        return self
