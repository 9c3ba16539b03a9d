"""Atomic file writes: write to a temporary file beside the target, then rename over it.

Readers (and a crash half-way) never see a half-written file: ``os.replace`` is atomic on POSIX
within one file system, which is why the temporary file lives in the target's folder.

``tempfile.mkstemp`` creates its file with mode 0600; before the rename the file gets the mode a plain
``open(path, "w")`` would have given it (``0666 & ~umask``: 0644 under umask 022), so a teammate can read a
shared run folder exactly when the user's umask lets them.
"""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``).

    Elsewhere it is read by setting and restoring it (``os.umask``) under a lock; read at each call, so
    a umask the program sets later is honoured.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        old = os.umask(0o077)  # the stricter value, should another thread create a file meanwhile
        os.umask(old)
    return old


def file_mode() -> int:
    """The permission bits a new regular file gets under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success give it the umask's mode and rename it to
    ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())  # after the write: a writer may have replaced the temporary file
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
