"""Shipped reference data: values that are the same for every user, precomputed once.

Made by ``tools/make_reference_data.py`` from the embedded data sets (``structures/embedded/``) and read
as a **read-only layer under the on-disk cache** (:class:`pipeline.common.cache.DiskCache`): a
lookup by cache key finds the shipped value first; only what is not shipped is read from, or
computed into, ``GENMATCH_CACHE``. With caching off (``cache_dir=False``) nothing shipped is used
either, so everything is computed (what the slow recomputation test and the cold benchmarks need).

Files (npz, no pickles; ``manifest.json`` says what shaped them):

- ``fingerprints.npz``: CDVAE fingerprints (:mod:`pipeline.crystals.score.fingerprints`, cache namespace
  ``cdvae_fp_v1``) of the Perov-5 and Carbon-24 **test** splits: ``hash`` [N] (structure_hash),
  ``struct`` [N, 61] float32 (NaN row: the featuriser raised), ``comp_index`` [N] into ``comp``
  [M, 132] float32 (one row per distinct cell composition).
- ``chgnet_energies.npz``: CHGNet energies per atom after batched FIRE relaxation
  (:func:`pipeline.crystals.score.energies.chgnet_energies` with ``relax=True``; cache namespace
  ``chgnet_energy_v1``) of the Perov-5 **val** crystals used by the default hull: ``key`` [N] (the
  full cache key ``<chgnet model>:relax-f<fmax>-s<max_steps>:<structure_hash>``), ``e_per_atom`` [N]
  float64 (NaN: the relaxation failed).

``GENMATCH_REFERENCE_DATA=off`` switches the shipped layers off (``tools/make_reference_data.py``
does, so that a new file never copies an old one).

A layer is used only when the installed versions that shape its values (matminer for the
fingerprints, chgnet for the energies) equal those recorded in the manifest; otherwise it is
skipped with a warning and the values are computed (and cached) as before.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"
FINGERPRINTS = "fingerprints.npz"
ENERGIES = "chgnet_energies.npz"
FP_NAMESPACE = "cdvae_fp_v1"
ENERGY_NAMESPACE = "chgnet_energy_v1"
SWITCH = "GENMATCH_REFERENCE_DATA"


def data_dir() -> Path:
    return HERE


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    path = (folder or HERE) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _versions_match(recorded: dict[str, str], what: str) -> bool:
    for pkg, ver in recorded.items():
        try:
            have = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            have = None
        if have != ver:
            warnings.warn(f"shipped {what} were made with {pkg} {ver}, installed is {have}: not used "
                          "(computed and cached instead)", stacklevel=3)
            return False
    return True


class FingerprintLayer:
    """Read-only ``s:<hash>`` / ``c:<hash>`` -> float64 vector (None: structure featuriser raised)."""

    namespace = FP_NAMESPACE

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as z:
            self.struct = z["struct"]
            self.comp = z["comp"]
            self.comp_index = z["comp_index"]
            self.hashes = [str(h) for h in z["hash"]]
            self.source = z["source"]  # number of the data set in the manifest's "sources"
            self.index = z["index"]  # row in that split
        self.row = {h: i for i, h in enumerate(self.hashes)}

    def __len__(self) -> int:
        return len(self.row)

    def get(self, keys: Iterable[str]) -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {}
        for k in keys:
            kind, _, h = k.partition(":")
            i = self.row.get(h)
            if i is None:
                continue
            if kind == "s":
                v = self.struct[i]
                out[k] = None if np.isnan(v).all() else v.astype(np.float64)
            elif kind == "c":
                out[k] = self.comp[self.comp_index[i]].astype(np.float64)
        return out


class EnergyLayer:
    """Read-only ``<model>:<tag>:<hash>`` -> energy per atom (None: the relaxation failed)."""

    namespace = ENERGY_NAMESPACE

    def __init__(self, path: Path):
        with np.load(path, allow_pickle=False) as z:
            self.keys = [str(k) for k in z["key"]]
            self.e_per_atom = z["e_per_atom"]
            self.index = z["index"]  # row in the split
        self.value = dict(zip(self.keys, self.e_per_atom.tolist()))

    def __len__(self) -> int:
        return len(self.value)

    def get(self, keys: Iterable[str]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for k in keys:
            e = self.value.get(k)
            if e is not None or k in self.value:
                out[k] = None if e is None or not np.isfinite(e) else e
        return out


@lru_cache(maxsize=None)
def _layer(name: str, folder: str) -> FingerprintLayer | EnergyLayer | None:
    root = Path(folder)
    man = read_manifest(root).get(name)
    path = root / name
    if man is None or not path.is_file() or not _versions_match(man.get("versions", {}), name):
        return None
    return (FingerprintLayer if name == FINGERPRINTS else EnergyLayer)(path)


def enabled() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() not in ("off", "0", "false", "no")


def fingerprint_layer(folder: Path | None = None) -> FingerprintLayer | None:
    """The shipped fingerprints (None when absent, switched off or made with another matminer)."""
    return _layer(FINGERPRINTS, str(folder or HERE)) if enabled() else None  # type: ignore[return-value]


def energy_layer(folder: Path | None = None) -> EnergyLayer | None:
    """The shipped relaxed reference energies (None when absent, switched off or made with another chgnet)."""
    return _layer(ENERGIES, str(folder or HERE)) if enabled() else None  # type: ignore[return-value]
