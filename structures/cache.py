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
    """The one content hash of a sequence of strings (file digests, settings, structure hashes):
    hex(SHA-256(s_1 || NUL || s_2 || NUL || ... || s_n || NUL))[:length], each s_i UTF-8 encoded.

    Order-sensitive; the NUL terminators keep ("ab", "c") and ("a", "bc") apart (a string holding NUL can still
    collide). ``length`` = 20 hex characters (80 bits) for cache entries, up to 64 for the full digest.
    """
    if not 1 <= length <= 64:
        raise ValueError(f"length must be 1..64 hex characters, got {length}")
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:length]
