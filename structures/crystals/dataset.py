"""Cached, vectorised data sets of tokenised crystals (KO E.2 tokens) for training.

``TokenizedCrystals.from_csv(path)`` parses a CDVAE-format CSV once, tokenises every structure
(canonical cell, see :mod:`structures.crystals.tokens`) and caches the result as an ``.npz`` (no
pickle) under the cache directory:

    $GENMATCH_CACHE, else ~/.cache/genmatch   ->   <cache>/crystal_tokens/<stem>-<key>.npz

``key`` is the SHA-256 of the CSV file's bytes together with the tokenizer settings (cell,
rounding, max_atoms, format version), so editing the CSV or changing a setting rebuilds the
cache. The file is written to a temporary name and renamed (readers never see half a file).
Rows that cannot be tokenised (too many atoms, a lattice length beyond 49.9 Angstrom, elements
beyond Pu, unparsable CIF) are skipped; their row numbers and reasons are kept in ``skipped``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from torch.utils.data import Dataset

from structures.atomic import atomic_savez
from structures.cache import CACHE_ENV, cache_dir, cache_key, file_sha256  # noqa: F401 (re-exported)
from structures.crystals.tokens import (
    PAD,
    Cell,
    CanonicalCrystals,
    CrystalTokenBatch,
    EncodeError,
    Rounding,
    canonical_arrays,
    sequence_length,
    token_mask_from_atom_mask,
    tokenize_arrays,
)
from structures.data import CRYSTAL_DATASETS, DataNotFoundError, resolve_dataset

if TYPE_CHECKING:  # pragma: no cover
    import torch

CACHE_FORMAT = 1  # bump when the cached arrays or the tokenizer change meaning
DEFAULT_MAX_ATOMS = {"perov_5": 20, "carbon_24": 24, "mp_20": 20, "mpts_52": 52}


@dataclass(eq=False)
class TokenizedCrystals(Dataset):
    """All token sequences of one CSV, padded to ``max_atoms`` (a torch-style map data set).

    ``dataset[i]`` is a LongTensor ``[6 + 4 max_atoms]``; :meth:`batch` gives a padded
    :class:`CrystalTokenBatch` with masks for any index array without a Python loop.
    """

    tokens: np.ndarray  # [N, 6 + 4A] int16
    num_atoms: np.ndarray  # [N] int16
    rows: np.ndarray  # [N] int32, CSV row of each entry
    max_atoms: int
    source: str = ""
    cell: str = "niggli"
    rounding: str = "nearest"
    skipped: dict[int, str] = field(default_factory=dict)  # CSV row -> reason

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, i: int) -> "torch.Tensor":
        import torch

        return torch.from_numpy(self.tokens[i].astype(np.int64))

    @property
    def atom_mask(self) -> np.ndarray:  # [N, A]
        return np.arange(self.max_atoms)[None, :] < self.num_atoms[:, None]

    def batch(self, indices: Sequence[int] | np.ndarray) -> CrystalTokenBatch:
        """Padded batch of the given entries (numpy; ``.to_torch()`` for tensors)."""
        idx = np.asarray(indices, dtype=np.int64)
        n = self.num_atoms[idx].astype(np.int64)
        atom_mask = np.arange(self.max_atoms)[None, :] < n[:, None]
        return CrystalTokenBatch(tokens=self.tokens[idx].astype(np.int64), atom_mask=atom_mask,
                                 token_mask=token_mask_from_atom_mask(atom_mask), num_atoms=n)

    def collate(self, items: Sequence["torch.Tensor"]) -> CrystalTokenBatch:
        """A DataLoader ``collate_fn`` for ``dataset[i]`` items (masks derived from PAD)."""
        import torch

        tokens = torch.stack(list(items))  # [B, 6 + 4A]
        atom_mask = (tokens[:, 6::4] != PAD)
        return CrystalTokenBatch(tokens=tokens, atom_mask=atom_mask,
                                 token_mask=torch.as_tensor(token_mask_from_atom_mask(atom_mask.numpy())),
                                 num_atoms=atom_mask.sum(1))

    def atom_count_distribution(self) -> np.ndarray:
        """Empirical p(a) of the atom count, ``[max_atoms + 1]`` float64 (index = atom count)."""
        counts = np.bincount(self.num_atoms.astype(np.int64), minlength=self.max_atoms + 1)
        return counts / max(1, counts.sum())

    def sample_num_atoms(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Draw ``n`` atom counts from :meth:`atom_count_distribution` (how samplers pick ``a``)."""
        rng = np.random.default_rng(rng)
        p = self.atom_count_distribution()
        return rng.choice(len(p), size=n, p=p).astype(np.int64)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, max_atoms: int | None = None, cell: Cell = "niggli",
                 rounding: Rounding = "nearest", cache: bool | str | os.PathLike = True,
                 progress: bool = True, limit: int | None = None) -> "TokenizedCrystals":
        """Tokenise a CDVAE-format CSV (``.csv`` or ``.csv.xz``), using the cache when present.

        Args:
            max_atoms: pad length in atoms (default: 20, or 24 / 52 for carbon_24 / mpts_52 folders).
            cache: True for :func:`cache_dir`, a folder, or False to skip the cache.
            limit: tokenise only the first ``limit`` rows (not cached).
        """
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"crystal CSV not found: {path}")
        if max_atoms is None:
            max_atoms = DEFAULT_MAX_ATOMS.get(path.parent.name, 20)
        cache_path = None
        if cache is not False and limit is None:
            settings = f"v{CACHE_FORMAT}-{cell}-{rounding}-A{max_atoms}"
            key = cache_key([file_sha256(path), settings])
            folder = cache_dir() if cache is True else Path(cache)
            cache_path = folder / "crystal_tokens" / f"{path.parent.name}-{path.name.split('.')[0]}-{key}.npz"
            if cache_path.is_file():
                try:
                    return cls.load(cache_path)
                except (OSError, ValueError, KeyError):
                    pass  # a corrupt cache is rebuilt below
        ds = cls._build(path, max_atoms, cell, rounding, progress, limit)
        if cache_path is not None:
            ds.save(cache_path)
        return ds

    @classmethod
    def from_name(cls, name: str, split: str, **kwargs) -> "TokenizedCrystals":
        """A named split (``perov_5``, ``carbon_24``, ``mp_20``, ``mpts_52``) of the data root."""
        if name not in CRYSTAL_DATASETS:
            raise ValueError(f"{name!r} is not a crystal data set ({', '.join(CRYSTAL_DATASETS)})")
        kwargs.setdefault("max_atoms", DEFAULT_MAX_ATOMS[name])
        return cls.from_csv(resolve_dataset(name, split), **kwargs)

    @classmethod
    def _build(cls, path: Path, max_atoms: int, cell: Cell, rounding: Rounding, progress: bool,
               limit: int | None) -> "TokenizedCrystals":
        import pandas as pd
        from pymatgen.core import Structure
        from tqdm import tqdm

        try:
            cifs = pd.read_csv(path, usecols=["cif"], nrows=limit)["cif"].tolist()
        except ValueError as exc:
            raise ValueError(f"{path}: not a CDVAE-format CSV with a 'cif' column ({exc})") from exc
        b = len(cifs)
        canon = CanonicalCrystals(lattice_params=np.zeros((b, 6)), frac=np.zeros((b, max_atoms, 3)),
                                  atomic_numbers=np.zeros((b, max_atoms), np.int64),
                                  num_atoms=np.zeros(b, np.int64))
        skipped: dict[int, str] = {}
        it = tqdm(cifs, desc=f"tokenising {path.name}", unit="crystal", disable=not progress)
        for i, cif in enumerate(it):
            try:
                with warnings.catch_warnings():  # pymatgen notes every snapped coordinate; not actionable
                    warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
                    s = Structure.from_str(cif, fmt="cif")
            except Exception as exc:  # pymatgen raises many types on bad CIF text
                skipped[i] = f"unparsable CIF ({type(exc).__name__}: {exc})"
                continue
            try:
                one = canonical_arrays([s], max_atoms, cell)
            except EncodeError as exc:
                skipped[i] = str(exc)
                continue
            canon.lattice_params[i] = one.lattice_params[0]
            canon.frac[i] = one.frac[0]
            canon.atomic_numbers[i] = one.atomic_numbers[0]
            canon.num_atoms[i] = one.num_atoms[0]
        _, batch, errors = tokenize_arrays(canon, rounding)
        for i, err in enumerate(errors):
            if err is not None and i not in skipped:
                skipped[i] = err
        keep = np.array([i for i in range(b) if i not in skipped], dtype=np.int64)
        return cls(tokens=batch.tokens[keep].astype(np.int16), num_atoms=batch.num_atoms[keep].astype(np.int16),
                   rows=keep.astype(np.int32), max_atoms=max_atoms, source=str(path), cell=cell,
                   rounding=rounding, skipped=dict(sorted(skipped.items())))

    def save(self, path: str | os.PathLike) -> None:
        """Write the arrays as a compressed npz, atomically (temp file + rename); no pickle."""
        meta = json.dumps({"format": CACHE_FORMAT, "max_atoms": self.max_atoms, "source": self.source,
                           "cell": self.cell, "rounding": self.rounding,
                           "skipped": {str(k): v for k, v in self.skipped.items()}})
        atomic_savez(Path(path), tokens=self.tokens, num_atoms=self.num_atoms, rows=self.rows, meta=np.array(meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenizedCrystals":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"{path}: cache format {meta.get('format')} != {CACHE_FORMAT}")
            tokens = z["tokens"]
            if tokens.shape[1] != sequence_length(meta["max_atoms"]):
                raise ValueError(f"{path}: token width {tokens.shape[1]} does not match max_atoms")
            return cls(tokens=tokens, num_atoms=z["num_atoms"], rows=z["rows"], max_atoms=int(meta["max_atoms"]),
                       source=meta["source"], cell=meta["cell"], rounding=meta["rounding"],
                       skipped={int(k): v for k, v in meta["skipped"].items()})
