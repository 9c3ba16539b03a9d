"""User-given input paths, checked without opening them: shared by the protein and crystal readers.

Opening a fifo blocks, and a dangling link, a symlink loop or a folder named ``x.pdb`` / ``x.cif`` is not an
input: :func:`file_problem` says why a path cannot be read as an input file from ``stat`` alone, so a batch can
record the reason as a failed row and go on, and a single input can be refused before anything is written.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be read as an input file (without opening it), or None for a regular file."""
    p = Path(path)
    try:
        st = os.stat(p)  # follows links: a dangling link raises ENOENT, a loop ELOOP
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop; point the link at a file"
        if p.is_symlink():
            return f"a broken symbolic link ({exc.strerror or type(exc).__name__}); point it at a file"
        return f"cannot access the file ({exc.strerror or type(exc).__name__})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        kind = "a fifo (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
        return f"{kind}, not a regular file; give a file"
    return None
