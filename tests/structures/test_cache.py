"""structures.cache.cache_key: the one content hash of a sequence of strings."""

from __future__ import annotations

import hashlib

import pytest

from structures.cache import cache_key


def test_cache_key_is_sha256_over_nul_terminated_strings() -> None:
    parts = ["abc", "settings=1", "Ä"]
    full = hashlib.sha256(b"".join(p.encode() + b"\0" for p in parts)).hexdigest()
    assert cache_key(parts) == full[:20]  # the default length of cache entries (unchanged: no cache misses)
    assert cache_key(parts, 32) == full[:32] and cache_key(iter(parts), 64) == full


def test_cache_key_separates_order_and_boundaries() -> None:
    assert cache_key(["a", "b"]) != cache_key(["b", "a"])
    assert cache_key(["ab", "c"]) != cache_key(["a", "bc"])
    assert cache_key([]) != cache_key([""])
    with pytest.raises(ValueError, match="length must be 1..64"):
        cache_key(["a"], 0)
    with pytest.raises(ValueError, match="length must be 1..64"):
        cache_key(["a"], 65)
