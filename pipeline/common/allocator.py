"""Keep freed memory in the process: glibc's malloc knobs for network-heavy CPU loops.

glibc serves every allocation above its mmap threshold (at most 32 MB on 64-bit) with a fresh ``mmap`` and
gives it back with ``munmap`` on free. A protein network call at B = 4, L = 100 builds several
[4, 100, 100, 384] float32 pair tensors (61 MB each): every call maps them anew and the kernel zero-fills
them page by page. Measured on the development CPU (multiflow-size network, 1 thread, per sample):
B = 1 0.61 s, B = 4 0.87 s with the defaults; B = 4 0.56 s with mmap disabled. :func:`keep_freed_memory`
makes glibc take large blocks from the heap and keep freed ones (``M_MMAP_MAX`` = 0, ``M_TRIM_THRESHOLD`` 1 GiB):
the process keeps its peak memory instead of returning it between calls. Process-wide, so only entry
points that own their process (the ``genmatch`` sampling and training commands, benchmarks) call it.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc malloc.h
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before trimming


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap for large blocks and heap trimming below 1 GiB; True when applied (Linux + glibc),
    False elsewhere (nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (e.g. musl): keep the allocator as it is
        return False
