"""Atomic file writes: write to a temporary file beside the target, then rename over it.

Readers (and a crash half-way) never see a half-written file: ``os.replace`` is atomic on POSIX
within one file system, which is why the temporary file lives in the target's folder.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """``open(path, mode)`` that only replaces ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def atomic_savez(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` to ``path`` atomically (no pickled objects allowed)."""
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, allow_pickle=False, **arrays)
