"""The documentation a newcomer reads: a short README, links that resolve, nothing that points outside.

- ``README.md``: at most 200 lines, none over 120 characters;
- every relative link in the README, ``CHANGELOG.md``, ``docs/`` and the other READMEs of the repository points at
  a file or folder that exists;
- no file of the repository names the data or notes folders that once sat beside it: the repository stands alone
  (the changelog may say that they are gone; this file must name them to look for them).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from helpers import REPO_ROOT

README = REPO_ROOT / "README.md"
MAX_README_LINES = 200
MAX_LINE = 120
#: a markdown link or image: [text](target) or [text](target "title")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
SKIP_DIRS = {".git", ".venv", "node_modules", "build", "dist", "__pycache__", ".pytest_cache", "runs"}


def repository_files() -> list[str]:
    """Paths (relative, POSIX) of the repository's files: tracked and untracked-but-not-ignored ones from git,
    or, where git is not available, every file outside the build and environment folders."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=REPO_ROOT, capture_output=True, check=True, timeout=60).stdout
        files = [f for f in out.decode("utf-8", "surrogateescape").split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = [p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.rglob("*")
                 if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(REPO_ROOT).parts)
                 and not p.relative_to(REPO_ROOT).parts[0].endswith(".egg-info")]
    return sorted(f for f in files if (REPO_ROOT / f).is_file())


def text_of(path: Path) -> str | None:
    """The file as text, or None for a binary file (a NUL byte, or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def markdown_files() -> list[Path]:
    """The README, the changelog, everything under docs/ and every other README.md of the repository."""
    names = [f for f in repository_files() if f.endswith(".md") and (
        f in ("README.md", "CHANGELOG.md") or f.startswith("docs/") or f.rsplit("/", 1)[-1] == "README.md")]
    return [REPO_ROOT / f for f in names]


def relative_links(text: str) -> list[str]:
    """Targets of the markdown links in ``text`` that are relative paths (no URL, no pure anchor), without the
    anchor; links inside code blocks and inline code are not links."""
    text = INLINE_CODE.sub("", FENCE.sub("", text))
    out = []
    for target in LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto:, or an anchor in the same page
        out.append(target.split("#", 1)[0])
    return out


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move details to docs/"


def test_readme_lines_fit() -> None:
    long = [(i, len(line)) for i, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
            if len(line) > MAX_LINE]
    assert not long, f"README.md lines over {MAX_LINE} characters (line, length): {long}"


def test_docs_exist() -> None:
    for name in ("architecture.md", "runs.md", "protocols.md", "results/crystals.md", "results/proteins.md"):
        assert (REPO_ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
    assert (REPO_ROOT / "benchmarks" / "README.md").is_file()
    assert (REPO_ROOT / "CHANGELOG.md").is_file()


def test_link_parser_finds_links() -> None:
    """The checker's own parser: relative links count, URLs, anchors and code do not."""
    text = ("See [runs](docs/runs.md#resume), ![plot](img/a.png \"t\"), [web](https://x.org/a.md), [top](#top).\n"
            "`[not](a_link.md)`\n```\n[not](either.md)\n```\n")
    assert relative_links(text) == ["docs/runs.md", "img/a.png"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = [t for t in relative_links(text) if t and not (path.parent / t).exists()]
    assert not broken, f"{path.relative_to(REPO_ROOT)}: links to missing files: {broken}"


def test_readme_links_to_the_docs() -> None:
    links = set(relative_links(README.read_text(encoding="utf-8")))
    for target in ("docs/architecture.md", "docs/runs.md", "docs/protocols.md", "docs/results/crystals.md",
                   "docs/results/proteins.md", "benchmarks/README.md", "CHANGELOG.md"):
        assert target in links, f"README.md does not link to {target}"
