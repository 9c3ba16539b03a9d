"""pipeline.common.allocator: after keep_freed_memory() a large block comes from the heap, not from a fresh mmap
(checked in a fresh subprocess through /proc/self/maps, so the test process keeps its allocator)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO_ROOT

PROBE = r"""
import sys
sys.path.insert(0, {root!r})
import numpy as np
from pipeline.common.allocator import keep_freed_memory

def big_mappings():
    out = set()
    for line in open("/proc/self/maps"):
        lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
        if hi - lo >= 60 << 20 and len(line.split()) < 6:  # anonymous, >= 60 MB
            out.add((lo, hi))
    return out

def grows():
    before = big_mappings()
    a = np.ones(64 << 17)  # 64 MB
    new = big_mappings() - before
    del a
    return bool(new)

first = grows()
applied = keep_freed_memory()
print(first, applied, grows())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc knobs (Linux)")
def test_large_blocks_come_from_the_heap_after_keep_freed_memory() -> None:

    root = str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=root)], capture_output=True, text=True, check=True)
    first, applied, after = out.stdout.split()
    assert first == "True"  # glibc's default: a 64 MB block is its own new mapping
    assert applied == "True" and after == "False"
