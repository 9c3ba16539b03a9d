"""What ``score crystals`` measures, against what, and where the work runs: :class:`CrystalScoreConfig`.

The metrics (docs/protocols.md): CDVAE validity, COV-R / COV-P with the data set's cutoffs, Wasserstein distances
of density and N_el over ``n_samples`` valid crystals; with a ``hull``, E_hull from CHGNet energies, the stable
rate (E_hull <= ``e_hull_threshold``) beside the hull's coverage, uniqueness; with ``training`` also novelty and
S.U.N. (FlowMM's protocol).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.common.parallel import BACKENDS, ComputeConfig
from pipeline.crystals.names import CHGNET_MODELS, DEFAULT_CHGNET, NAMED_HULLS
from pipeline.crystals.score.coverage import cutoffs_for
from pipeline.crystals.score.properties import N_SAMPLES
from structures.errors import InputError
from structures.validate import check_bool, check_choice, check_float, check_instance, check_int

__all__ = ["CrystalScoreConfig"]

PICKLES = (".pkl", ".pkl.gz", ".pickle")
HULL_FILES = PICKLES + (".json", ".json.gz")


@dataclass(frozen=True)
class CrystalScoreConfig:
    """Settings of a crystal scoring run, validated once, when it is made (InputError naming the field).

    Reference set (required by :func:`pipeline.crystals.score.run.score_crystals`): ``reference`` is a data set
    split ("perov_5:test"), a CIF folder or file, a CDVAE CSV or structures; ``reference_limit`` keeps its first N.
    ``dataset`` picks the CDVAE coverage cutoffs (default: the reference's data set) unless both ``struc_cutoff``
    and ``comp_cutoff`` are given. ``n_samples`` valid crystals (drawn with ``seed``) enter the Wasserstein
    distances (CDVAE: 1,000).

    Stability: ``hull`` is "none" (no stability metrics), "default" (MP elemental references + the CHGNet energies
    of ``hull_reference``, relaxed unless ``hull_relax`` is False; cached), "mp-elements", a ``.json[.gz]`` file of
    ComputedEntry dicts, a PatchedPhaseDiagram ``.pkl[.gz]`` (needs ``trust_pickle``: unpickling runs code from the
    file) or a :class:`~pipeline.crystals.score.hull.ReferenceHull`. ``energies``: CHGNet energies per atom of the
    scored structures (a sequence, or a ``relax_results.csv/.parquet`` read by id); without them static energies
    of the given geometries are computed with CHGNet ``chgnet``. ``training``: structures for novelty and S.U.N.

    Where the work runs: ``workers`` local processes with ``backend`` ("processes" or "dask"), or a dask.distributed
    ``dask_scheduler`` address; ``cache_dir`` for fingerprints and energies (None: the default cache, False: none).
    ``plots``: PNG plots in the run folder.
    """

    reference: Any = None
    reference_limit: int | None = None
    dataset: str | None = None
    struc_cutoff: float | None = None
    comp_cutoff: float | None = None
    n_samples: int = N_SAMPLES
    seed: int = 0
    e_hull_threshold: float = 0.0
    chgnet: str = DEFAULT_CHGNET
    hull: Any = "none"
    trust_pickle: bool = False
    hull_reference: Any = None
    hull_relax: bool = True
    energies: Any = None
    training: Any = None
    workers: int = 1
    dask_scheduler: str | None = None
    backend: str = "processes"
    cache_dir: str | os.PathLike | bool | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field_name in ("reference", "hull_reference", "training"):
            _check_structures(f"{name}.{field_name}", getattr(self, field_name))
        if self.reference_limit is not None:
            check_int(f"{name}.reference_limit", self.reference_limit, minimum=1)
        for field_name in ("struc_cutoff", "comp_cutoff"):
            if getattr(self, field_name) is not None:
                self._set(field_name, check_float(f"{name}.{field_name}", getattr(self, field_name), 0.0,
                                                  strict_minimum=True))
        check_int(f"{name}.n_samples", self.n_samples, minimum=1)
        check_int(f"{name}.seed", self.seed, 0)
        self._set("e_hull_threshold", check_float(f"{name}.e_hull_threshold", self.e_hull_threshold))
        self._set("chgnet", check_choice(f"{name}.chgnet", self.chgnet, CHGNET_MODELS))
        for field_name in ("trust_pickle", "hull_relax", "plots"):
            check_bool(f"{name}.{field_name}", getattr(self, field_name))
        check_int(f"{name}.workers", self.workers, minimum=1)
        if self.dask_scheduler is not None:
            check_instance(f"{name}.dask_scheduler", self.dask_scheduler, str, "a scheduler address (tcp://host:port)")
        self._set("backend", check_choice(f"{name}.backend", self.backend, BACKENDS))
        if not (self.cache_dir is None or self.cache_dir is False or isinstance(self.cache_dir, (str, os.PathLike))):
            raise InputError(f"{name}.cache_dir must be a folder path, None (the default cache) or False (no "
                             f"cache), got {self.cache_dir!r}")
        self._check_dataset(name)
        self._check_hull(name)
        self._check_energies(name)

    def _set(self, field_name: str, value: Any) -> None:
        object.__setattr__(self, field_name, value)

    def cutoff_dataset(self) -> str | None:
        """``dataset``, else the data set of a ``reference`` written as a split ("perov_5:test" -> perov_5): the
        data set whose CDVAE coverage cutoffs apply (and that the summary reports)."""
        from structures.data import CRYSTAL_DATASETS

        if self.dataset is None and isinstance(self.reference, str) and ":" in self.reference:
            prefix = self.reference.split(":")[0]
            return prefix if prefix in CRYSTAL_DATASETS else None
        return self.dataset

    def cutoffs(self) -> tuple[float, float]:
        """(structure, composition) coverage cutoffs: the given ones, else CDVAE's of :meth:`cutoff_dataset`."""
        return cutoffs_for(self.cutoff_dataset(), self.struc_cutoff, self.comp_cutoff)

    def _check_dataset(self, name: str) -> None:
        if self.dataset is not None:
            check_instance(f"{name}.dataset", self.dataset, str, "a data set name (perov_5, carbon_24, mp_20)")
        if self.dataset is None and self.reference is None and (self.struc_cutoff is None or self.comp_cutoff is None):
            return  # not complete yet: scoring needs a reference, and a config made with one is checked here
        try:
            self.cutoffs()
        except ValueError:
            raise InputError(f"{name}.dataset: no coverage cutoffs for {self.cutoff_dataset()!r}; give dataset= one "
                             "of perov_5, carbon_24, mp_20 (CDVAE's cutoffs) or both struc_cutoff= and comp_cutoff= "
                             "(CLI: --dataset, --struc-cutoff, --comp-cutoff)") from None

    def _check_hull(self, name: str) -> None:
        from pipeline.crystals.score.hull import ReferenceHull

        h = "none" if self.hull is None else self.hull
        if isinstance(h, ReferenceHull):
            return
        if not isinstance(h, (str, os.PathLike)):
            raise InputError(f"{name}.hull must be one of {', '.join(NAMED_HULLS)}, a hull file or a ReferenceHull, "
                             f"got {type(h).__name__}")
        if isinstance(h, str) and h.strip().replace("_", "-").lower() in NAMED_HULLS:
            self._set("hull", h.strip().replace("_", "-").lower())
            return
        p = Path(h).expanduser()
        if not p.name.endswith(HULL_FILES):
            raise InputError(f"{name}.hull: unknown hull {str(h)!r}; use none, default, mp-elements, a .json[.gz] "
                             "file of ComputedEntry dicts or a PatchedPhaseDiagram .pkl[.gz] (with trust_pickle=True, "
                             "CLI --trust-pickle)")
        if not p.is_file():
            raise InputError(f"{name}.hull: hull file not found: {p}")
        if p.name.endswith(PICKLES) and not self.trust_pickle:
            raise InputError(f"{name}.hull: {p}: unpickling a hull runs code from the file; set trust_pickle=True "
                             "(CLI --trust-pickle) only for a file you trust, or give the entries as .json")

    def _check_energies(self, name: str) -> None:
        e = self.energies
        if e is None or isinstance(e, (str, os.PathLike)):
            return
        import numpy as np

        if isinstance(e, (bytes, dict)) or not isinstance(e, (Sequence, np.ndarray)):
            raise InputError(f"{name}.energies must be energies per atom (a sequence of numbers, NaN where there is "
                             f"none) or a relax_results.csv/.parquet path, got {type(e).__name__}")
        try:
            values = tuple(float(v) for v in np.asarray(e, dtype=float).reshape(-1))
        except (TypeError, ValueError):
            raise InputError(f"{name}.energies must hold numbers (eV/atom; NaN where there is none)") from None
        self._set("energies", values)

    def compute(self, progress: bool = True) -> ComputeConfig:
        """Where the fingerprints and energies are computed and cached."""
        return ComputeConfig(workers=self.workers, dask_scheduler=self.dask_scheduler, backend=self.backend,
                             cache_dir=self.cache_dir, progress=progress)

    def check_resources(self) -> None:
        """What cannot be checked when the config is made, checked before a run starts (:class:`InputError`,
        nothing written): the dask scheduler answers (the twin of ``ProteinScoreConfig.check_resources``)."""
        if self.dask_scheduler is not None:
            from pipeline.common.parallel import check_scheduler

            check_scheduler(self.dask_scheduler, option="dask_scheduler (--dask-scheduler)")

    def run_settings(self) -> dict[str, Any]:
        """The settings a run folder is keyed by (the keys score run folders have always had)."""
        return {"dataset": self.cutoff_dataset(), "struc_cutoff": self.struc_cutoff, "comp_cutoff": self.comp_cutoff,
                "n_samples": self.n_samples, "seed": self.seed, "e_hull_threshold": self.e_hull_threshold,
                "energy_model": self.chgnet, "hull": str(self.hull), "trusted": self.trust_pickle,
                "hull_relax": self.hull_relax, "plots": self.plots}


def _check_structures(name: str, value: Any) -> None:
    """Structures (converted when used) or a path / data set name; numbers, bools and bytes are refused here."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return
    if isinstance(value, (bool, int, float, bytes)):
        raise InputError(f"{name} must be structures (a list or dict of pymatgen Structures / ASE Atoms, a previous "
                         "result), a CIF file or folder, a CDVAE CSV or a data set split such as 'perov_5:test', got "
                         f"{value!r} ({type(value).__name__})")
