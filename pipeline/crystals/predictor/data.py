"""Training data of a property predictor: token sequences of a CDVAE CSV and numeric property columns.

``data`` is a data set split (``perov_5:val``) or a CDVAE-format CSV path (``.csv`` / ``.csv.xz``; e.g. MP-20's
``train.csv`` given by path). The property columns are checked before anything is tokenised: a column that is not
in the file, that is not numeric, or that is empty raises :class:`InputError`; rows with a missing value (NaN) are
dropped and counted (a warning on stderr and in the record). Rows the tokenizer cannot encode are skipped as in
the generator's trainer (:class:`structures.crystals.dataset.TokenizedCrystals`).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from pipeline.crystals.flow import CoordinatePath, atom_mask_of, make_path, token_mask_of
from structures.cache import file_sha256
from structures.crystals.dataset import TokenizedCrystals
from structures.crystals.tokens import PAD
from structures.data import CRYSTAL_DATASETS, SPLITS, resolve_dataset
from structures.errors import InputError

__all__ = ["DataSource", "PredictorData", "load_predictor_data", "noisy_tokens", "resolve_data"]


@dataclass(frozen=True)
class DataSource:
    """Where a predictor's data come from: the CSV, the data set name (and split for a named one)."""

    path: Path
    name: str
    split: str | None = None


def resolve_data(data: str, what: str = "data") -> DataSource:
    """``perov_5:val`` or a CSV path -> :class:`DataSource`; InputError for an unknown data set or a missing file."""
    text = str(data)
    name, _, split = text.partition(":")
    if name in CRYSTAL_DATASETS and not Path(text).exists():
        if split not in SPLITS:
            raise InputError(f"{what}: data set {name!r} needs a split: write {name}:val (or train/test), got "
                             f"{text!r}")
        return DataSource(Path(resolve_dataset(name, split)), name, split)  # DataNotFoundError when absent
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(f"{what}: {text!r} is neither a CSV file nor a data set split "
                         f"({', '.join(f'{n}:val' for n in CRYSTAL_DATASETS)}, ...)")
    if not path.name.endswith((".csv", ".csv.xz", ".csv.gz")):
        raise InputError(f"{what}: {path} is not a CDVAE-format .csv[.xz]")
    parent = path.parent.name
    return DataSource(path, parent if parent in CRYSTAL_DATASETS else path.name.split(".")[0])


def read_properties(source: DataSource, properties: Sequence[str], limit: int | None = None,
                    what: str = "PredictorTrainConfig.properties") -> np.ndarray:
    """``[N_rows, P]`` float64 of the property columns (NaN where missing); InputError for a column that is not
    there, not numeric or all missing."""
    import pandas as pd

    try:
        head = pd.read_csv(source.path, nrows=20)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"{source.path}: cannot read the CSV ({first}); give a CDVAE-format CSV") from None
    header = list(head.columns)
    if "cif" not in header:
        raise InputError(f"{source.path}: no 'cif' column; give a CDVAE-format CSV")
    numeric = [c for c in header if pd.api.types.is_float_dtype(head[c]) and not str(c).startswith("Unnamed")]
    missing = [p for p in properties if p not in header or p == "cif"]
    if missing:
        raise InputError(f"{what}: {', '.join(map(repr, missing))} not a column of {source.path.name}; its numeric "
                         f"columns are {', '.join(numeric) or 'none'}")
    table = pd.read_csv(source.path, usecols=list(properties), nrows=limit)
    out = np.empty((len(table), len(properties)), dtype=np.float64)
    for j, prop in enumerate(properties):
        values = pd.to_numeric(table[prop], errors="coerce")
        bad = values.isna() & table[prop].notna()
        if bad.any():
            example = table[prop][bad].iloc[0]
            raise InputError(f"{what}: column {prop!r} of {source.path.name} is not numeric (e.g. {str(example)[:40]!r}"
                             f" in row {int(np.flatnonzero(bad.to_numpy())[0])}); choose a numeric column")
        if values.isna().all():
            raise InputError(f"{what}: column {prop!r} of {source.path.name} has no values")
        arr = values.to_numpy(dtype=np.float64)
        if np.isinf(arr).any():
            raise InputError(f"{what}: column {prop!r} of {source.path.name} holds infinite values")
        out[:, j] = arr
    return out


@dataclass
class PredictorData:
    """Tokens ``[N, 6 + 4A]`` (int64) and targets ``[N, P]`` (float64) of the usable rows, and their description."""

    tokens: Tensor
    targets: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def split(self, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(train, held-out) indices: a seeded permutation, ``round(holdout * N)`` (at least 1) held out."""
        perm = np.random.default_rng(seed).permutation(len(self))
        n_out = min(len(self) - 1, max(1, int(round(holdout * len(self)))))
        return np.sort(perm[n_out:]), np.sort(perm[:n_out])


def load_predictor_data(source: DataSource, properties: Sequence[str], max_atoms: int, limit: int | None = None,
                        progress: bool = False) -> PredictorData:
    """Tokenise ``source`` (padded to ``max_atoms``, the generator's) and attach its property columns."""
    y_rows = read_properties(source, properties, limit)  # checked first: a bad column costs no tokenising
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = TokenizedCrystals.from_csv(source.path, max_atoms=max_atoms, progress=progress, limit=limit)
    except (ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{source.path}: cannot read the training data ({first}); give a CDVAE-format CSV") from None
    y = y_rows[ds.rows]  # [N, P]
    keep = np.isfinite(y).all(1)
    n_nan = int((~keep).sum())
    if n_nan:
        print(f"genmatch: warning: dropped {n_nan} of {len(y)} crystals of {source.path.name} with a missing "
              f"{'/'.join(properties)} value", file=sys.stderr)
    if keep.sum() < 4:
        raise InputError(f"{source.path}: {int(keep.sum())} usable crystals with {', '.join(properties)} (of "
                         f"{len(y_rows)} rows); a predictor needs at least 4")
    info = {"name": source.name, "split": source.split, "file": source.path.name, "sha256": file_sha256(source.path),
            "n_rows": len(y_rows), "n_crystals": int(keep.sum()), "n_skipped": len(ds.skipped),
            "n_missing_property": n_nan, "max_atoms": max_atoms,
            "skipped": {str(k): v[:200] for k, v in list(ds.skipped.items())[:20]}}
    return PredictorData(torch.from_numpy(ds.tokens[keep].astype(np.int64)), torch.from_numpy(y[keep]), info)


def noisy_tokens(x1: Tensor, t: Tensor, scheduler: str, coords: CoordinatePath,
                 generator: torch.Generator | None = None) -> Tensor:
    """x_t ~ p_t(. | x_1) on the generator's path (:func:`pipeline.crystals.flow.make_path`: KO eq. 2, and KO eq. 27
    on the coordinates of a metric path); padded slots stay PAD. ``x1`` ``[B, 6 + 4A]``, ``t`` ``[B]``."""
    xt = make_path(scheduler, coords).sample(x1, t, generator)
    return torch.where(token_mask_of(atom_mask_of(x1)), xt, torch.full_like(xt, PAD))
