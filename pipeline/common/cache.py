"""A small content-addressed on-disk cache (SQLite, one table per namespace).

Values are float64 arrays (fingerprints) or JSON-able objects; keys are content hashes
(:func:`pipeline.common.hashing.structure_hash`) prefixed by whatever defines the value
(featuriser version, model name). SQLite gives atomic, concurrent-safe writes for free.

Location: ``$GENMATCH_CACHE`` if set, else ``~/.cache/genmatch``. ``cache_dir=None`` anywhere in
the pipeline means this default; pass ``False``/``""`` to disable caching.

A :class:`DiskCache` may sit on a read-only ``shipped`` layer (values shipped with the package,
:mod:`pipeline.crystals.score.reference_data`): a lookup finds a shipped value first and reads only the
other keys from disk; writes always go to disk.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import numpy as np

from structures.cache import cache_dir as cache_dir_default


def resolve_cache_dir(cache_dir: str | os.PathLike | None | bool) -> Path | None:
    """``None`` -> default location; ``False`` or ``""`` -> no cache; else that folder."""
    if cache_dir is None or cache_dir is True:
        return cache_dir_default()
    if cache_dir is False or cache_dir == "":
        return None
    return Path(cache_dir)


class ReadOnlyLayer(Protocol):
    """Shipped values: ``get(keys)`` -> {key: value} for the keys it holds (decoded values)."""

    def get(self, keys: Iterable[str]) -> dict[str, Any]: ...


class DiskCache:
    """Key -> value store in ``<cache_dir>/<namespace>.sqlite``, optionally over a read-only layer.

    ``get_arrays``/``put_arrays`` store float64 vectors (``None`` is stored too: it records that a
    value could not be computed, e.g. a fingerprint that raised); ``get_json``/``put_json`` store
    JSON objects. ``shipped``: a :class:`ReadOnlyLayer` looked up first (``hits_shipped`` counts
    its hits).
    """

    def __init__(self, cache_dir: str | os.PathLike, namespace: str, shipped: ReadOnlyLayer | None = None):
        self.shipped = shipped
        self.hits_shipped = 0
        self.path = Path(cache_dir) / f"{namespace}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        return con

    def _get(self, keys: list[str]) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        if not keys:
            return out
        with self._connect() as con:
            for i in range(0, len(keys), 900):  # SQLite's host-parameter limit
                chunk = keys[i:i + 900]
                q = f"SELECT k, v FROM kv WHERE k IN ({','.join('?' * len(chunk))})"
                out.update(dict(con.execute(q, chunk).fetchall()))
        return out

    def _put(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        with self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", list(items))

    def _from_shipped(self, keys: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
        """(shipped hits, the keys left for the disk)."""
        keys = list(keys)
        if self.shipped is None:
            return {}, keys
        hits = self.shipped.get(keys)
        self.hits_shipped += len(hits)
        return hits, [k for k in keys if k not in hits]

    def get_arrays(self, keys: Iterable[str]) -> dict[str, np.ndarray | None]:
        """Cached vectors for the keys present (a stored ``None`` comes back as ``None``)."""
        out, rest = self._from_shipped(keys)
        raw = self._get(rest)
        out.update({k: (None if v is None else np.frombuffer(v, dtype=np.float64).copy()) for k, v in raw.items()})
        return out

    def put_arrays(self, values: Mapping[str, np.ndarray | None]) -> None:
        self._put((k, None if v is None else np.asarray(v, dtype=np.float64).tobytes())
                  for k, v in values.items())

    def get_json(self, keys: Iterable[str]) -> dict[str, Any]:
        out, rest = self._from_shipped(keys)
        out.update({k: json.loads(v) for k, v in self._get(rest).items() if v is not None})
        return out

    def put_json(self, values: Mapping[str, Any]) -> None:
        self._put((k, json.dumps(v).encode()) for k, v in values.items())
