"""Shared test configuration: the repository root (tools/) and tests/ (``helpers``: the fixture locator) are
importable, hypothesis is deterministic."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "tests") not in sys.path:  # last: tests/pipeline etc. must never shadow the packages
    sys.path.append(str(ROOT / "tests"))

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci")
