"""The on-disk cache of derived data (tokenised crystals, parsed protein folders).

Location: ``$GENMATCH_CACHE``, else ``~/.cache/genmatch``. Entries are ``.npz`` files (never
pickles) keyed by the SHA-256 of their inputs' bytes and the settings that shaped them, written
atomically (:mod:`structures.atomic`), so a stale or half-written entry is never read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

CACHE_ENV = "GENMATCH_CACHE"


def cache_dir() -> Path:
    """``$GENMATCH_CACHE`` or ``~/.cache/genmatch``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genmatch"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_key(parts: Iterable[str], length: int = 20) -> str:
    """Short hex key of a sequence of strings (file digests, settings)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:length]
