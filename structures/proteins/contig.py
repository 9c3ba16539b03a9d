"""Motif-scaffolding layouts: contig strings in RFdiffusion's syntax (a useful subset), parsed and validated once.

A contig lists the segments of the designed chain, N- to C-terminus, separated by ``/``:

* ``10-40`` -- 10 to 40 free (designed) residues; ``20`` -- exactly 20 (``0-5`` allows none, a bare ``0`` is
  refused: it would add nothing);
* ``A3-22`` -- residues 3 to 22 of chain A of the motif file, in that order; ``A38`` (or ``A38-38``) is one
  residue. Residue numbers are the file's author numbers, without insertion codes;
* ``A3-22:seq`` -- the same motif segment, with its amino acids kept too (sequence fixing). Without ``:seq`` a
  motif segment fixes only the structure (translation and rotation of each residue's frame) and its sequence
  is designed. :meth:`ContigSpec.with_motif_sequence` sets or clears ``:seq`` on every motif segment (the
  command line's ``--motif-sequence``).

Beside the contig, an optional total length (RFdiffusion's ``contigmap.length``): ``"70-100"``, ``"85"``, an
int or a ``(low, high)`` pair. Surrounding ``[...]`` (RFdiffusion's Hydra quoting) are accepted. Not supported
(refused with a message): several chains (RFdiffusion's ``/0 `` chain break, used for binder targets),
lower-case or multi-letter chain ids, insertion codes, negative residue numbers.

:func:`parse_contig` returns a frozen :class:`ContigSpec` (built directly in Python, it validates the same way);
:meth:`ContigSpec.draw` draws concrete segment lengths, seeded: a :class:`ContigDraw` with, per scaffold
position, the index of the motif residue placed there (motif residues are numbered in contig order) or -1 for a
free residue. The law is RFdiffusion's (each free length uniform in its range, the draw kept only when the
total length is in range), i.e. uniform over all admissible tuples of free lengths, sampled exactly (no
rejection loop). Every bad specification raises :class:`~structures.errors.InputError` naming what is wrong
and how to fix it. The 24 (+1) problems of RFdiffusion's benchmark are :func:`benchmark_problem`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from structures.data import EMBEDDED_DATA_ROOT
from structures.errors import InputError

#: the ready-made RFdiffusion benchmark problems (source: structures/embedded/proteins/README.md)
BENCHMARK_FILE = EMBEDDED_DATA_ROOT / "proteins" / "rfdiffusion_benchmark.json"
SEQ_SUFFIX = ":seq"
_DIGITS = "0123456789"
_SYNTAX = ("a free length N or N-M (e.g. 10-40) or a motif segment <chain><start>-<end> (e.g. A3-22, "
           "optionally followed by :seq)")


@dataclass(frozen=True)
class FreeSegment:
    """``low`` to ``high`` designed residues (both inclusive)."""

    low: int
    high: int

    def __str__(self) -> str:
        return f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class MotifSegment:
    """Residues ``start`` to ``end`` (inclusive, author numbering) of ``chain`` of the motif file."""

    chain: str
    start: int
    end: int
    fix_sequence: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        return f"{self.chain}{self.start}-{self.end}{SEQ_SUFFIX if self.fix_sequence else ''}"


Segment = FreeSegment | MotifSegment


@dataclass(frozen=True)
class ContigSpec:
    """A validated contig: ``segments`` N- to C-terminus and the optional total ``length`` (low, high)."""

    segments: tuple[Segment, ...]
    length: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.segments))
        if self.length is not None:
            object.__setattr__(self, "length", _parse_length(self.length, str(self)))
        _validate(self)

    def __str__(self) -> str:
        return "/".join(str(s) for s in self.segments)

    def describe(self) -> str:
        """The contig and its length range, e.g. ``10-40/A3-22/10-40 (length 50-75)``."""
        return str(self) + ("" if self.length is None else f" (length {_range_text(self.length)})")

    @property
    def motif_segments(self) -> tuple[MotifSegment, ...]:
        return tuple(s for s in self.segments if isinstance(s, MotifSegment))

    @property
    def motif_length(self) -> int:
        """Number of motif residues (all motif segments)."""
        return sum(s.length for s in self.motif_segments)

    def free_range(self) -> tuple[int, int]:
        """Fewest and most free residues the segments allow (the total length not applied)."""
        free = [s for s in self.segments if isinstance(s, FreeSegment)]
        return sum(s.low for s in free), sum(s.high for s in free)

    def total_range(self) -> tuple[int, int]:
        """Shortest and longest scaffold: the segments' range cut by the total length range, if any."""
        lo, hi = self.free_range()
        lo, hi = lo + self.motif_length, hi + self.motif_length
        if self.length is not None:
            lo, hi = max(lo, self.length[0]), min(hi, self.length[1])
        return lo, hi

    def with_motif_sequence(self, fixed: bool = True) -> ContigSpec:
        """The same contig with the sequence of every motif segment kept (``fixed``) or designed."""
        segs = tuple(replace(s, fix_sequence=fixed) if isinstance(s, MotifSegment) else s for s in self.segments)
        return replace(self, segments=segs)

    def draw(self, rng: np.random.Generator | int, length: int | None = None) -> ContigDraw:
        """Concrete segment lengths: RFdiffusion's law, exactly (see the module docstring); ``length`` forces
        the total (an :class:`InputError` when the contig cannot reach it). Same ``rng`` seed, same draw."""
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        lo, hi = self.total_range()
        if length is not None:
            if not lo <= int(length) <= hi:
                raise InputError(f"length {length}: contig {self.describe()} makes scaffolds of {lo}-{hi} "
                                 "residues; ask for a length in that range or change the contig")
            lo = hi = int(length)
        free = [(s.low, s.high) for s in self.segments if isinstance(s, FreeSegment)]
        ways = _ways(tuple(free))  # ways[i][s]: tuples of lengths of free segments i.. summing to s
        m = self.motif_length
        totals = np.arange(lo - m, hi - m + 1)
        total = int(rng.choice(totals, p=_normalise(ways[0][totals])))
        lengths, k = [], 0
        for seg in self.segments:
            if isinstance(seg, MotifSegment):
                lengths.append(seg.length)
                continue
            options = np.arange(seg.low, min(seg.high, total) + 1)
            x = int(rng.choice(options, p=_normalise(ways[k + 1][total - options])))
            lengths.append(x)
            total -= x
            k += 1
        return ContigDraw(self, tuple(lengths))


@dataclass(frozen=True)
class ContigDraw:
    """One concrete layout of ``spec``: ``lengths`` per segment; per scaffold position the motif residue index
    (``motif_index``, contig order, -1 = free)."""

    spec: ContigSpec
    lengths: tuple[int, ...]
    motif_index: np.ndarray = field(init=False, repr=False, compare=False)  # [L] int64

    def __post_init__(self) -> None:
        segs = self.spec.segments
        if len(self.lengths) != len(segs):
            raise ValueError(f"{len(self.lengths)} lengths for {len(segs)} segments of {self.spec}")
        parts, first = [], 0
        for seg, n in zip(segs, self.lengths):
            if isinstance(seg, MotifSegment):
                if n != seg.length:
                    raise ValueError(f"motif segment {seg} has {seg.length} residues, not {n}")
                parts.append(np.arange(first, first + n))
                first += n
            else:
                if not seg.low <= n <= seg.high:
                    raise ValueError(f"free segment {seg} cannot have {n} residues")
                parts.append(np.full(n, -1))
        object.__setattr__(self, "motif_index", np.concatenate(parts).astype(np.int64))
        lo, hi = self.spec.total_range()
        if not lo <= len(self) <= hi:
            raise ValueError(f"draw of {len(self)} residues outside {lo}-{hi} for {self.spec.describe()}")

    def __len__(self) -> int:
        return int(self.motif_index.shape[0])

    def __str__(self) -> str:
        """The draw as a contig of fixed lengths, e.g. ``12/A3-22/31`` (RFdiffusion's sampled mask; free segments
        drawn empty are left out)."""
        return "/".join(str(s) if isinstance(s, MotifSegment) else str(n)
                        for s, n in zip(self.spec.segments, self.lengths) if n)

    @property
    def motif_mask(self) -> np.ndarray:  # [L] bool
        return self.motif_index >= 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready record of the draw (for a manifest)."""
        return {"contig": str(self.spec), "length_range": None if self.spec.length is None else list(self.spec.length),
                "draw": str(self), "length": len(self), "segment_lengths": list(self.lengths)}


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------


def parse_contig(text: str, length: str | int | tuple[int, int] | None = None) -> ContigSpec:
    """A :class:`ContigSpec` from a contig string and an optional total length (see the module docstring)."""
    if not isinstance(text, str):
        raise InputError(f"contig must be a string such as '10-40/A3-22/10-40', got {type(text).__name__}")
    core = text.strip()
    offset = len(text) - len(text.lstrip())
    if core.startswith("[") and core.endswith("]"):
        core, offset = core[1:-1], offset + 1
    if not core.strip():
        raise InputError(f"contig {text!r} is empty; give segments such as '10-40/A3-22/10-40'")
    blank = next((i for i, c in enumerate(core) if c.isspace()), None)
    if blank is not None:
        what = ("several chains (RFdiffusion's '/0 ' chain break) are not supported: genmatch designs one chain; "
                "drop the target chain and the '/0 '" if core[:blank].endswith("/0") or "/0 " in core
                else "whitespace inside a contig; remove it")
        raise InputError(f"contig {text!r}, character {offset + blank + 1}: {what}")
    segments: list[Segment] = []
    for k, token in enumerate(core.split("/")):
        if not token:
            raise InputError(f"contig {text!r}, character {offset + 1}: segment {k + 1} is empty (two '/' in a "
                             "row, or one at an end); remove the extra '/'")
        segments.append(_segment(text, token, k + 1, offset))
        offset += len(token) + 1
    return ContigSpec(tuple(segments), length)


def _segment(text: str, token: str, number: int, offset: int) -> Segment:
    """One segment; a syntax error names the character (1-based, in ``text``) where reading stopped."""
    def fail(i: int, what: str, syntax: bool = True) -> InputError:
        fix = f"; write {_SYNTAX}" if syntax else ""
        return InputError(f"contig {text!r}, segment {number} {token!r}, character {offset + i + 1}: {what}{fix}")

    chain, i = None, 0
    if token[0].isascii() and token[0].isalpha():
        if not token[0].isupper():
            raise fail(0, f"chain {token[0]!r} is lower case (genmatch reads upper-case chain ids)")
        chain, i = token[0], 1
        if i < len(token) and token[i].isalpha():
            raise fail(i, "chain ids are one letter")
    elif token[0] == "-":
        raise fail(0, "a negative " + ("length" if token[1:2].isdigit() else "number"))
    start, i = _number(token, i)
    if start is None:
        raise fail(i, "expected a residue number after the chain" if chain else f"unexpected {token[i]!r}")
    end = start
    if i < len(token) and token[i] == "-":
        end, i = _number(token, i + 1)
        if end is None:
            raise fail(i, "expected a number after '-'" if i >= len(token) or token[i] != "-"
                       else "a negative number")
    fix = chain is not None and token[i:] == SEQ_SUFFIX
    if i < len(token) and not fix:
        hint = " (insertion codes are not supported: renumber the file)" if chain and token[i].isalpha() else ""
        raise fail(i, f"unexpected {token[i:]!r}{hint}")
    if chain is not None:
        if end < start:
            raise fail(0, f"reversed residue range {start}-{end}; write it low-high ({chain}{end}-{start})", False)
        return MotifSegment(chain, start, end, fix)
    if end < start:
        raise fail(0, f"reversed range {start}-{end}; write it low-high ({end}-{start})", False)
    if end == 0:
        raise fail(0, "an empty free segment (0 residues); drop it, or write 0-N to allow none up to N", False)
    return FreeSegment(start, end)


def _number(token: str, i: int) -> tuple[int | None, int]:
    j = i
    while j < len(token) and token[j] in _DIGITS:
        j += 1
    return (int(token[i:j]) if j > i else None), j


def _parse_length(length: object, contig: str) -> tuple[int, int]:
    """(low, high) from ``"70-100"``, ``"85"``, ``85`` or ``(70, 100)``."""
    where = f"length {length!r} of contig {contig!r}"
    if isinstance(length, str):
        parts = length.strip().split("-")
        if len(parts) not in (1, 2) or not all(p.strip().isdigit() and p.strip().isascii() for p in parts):
            raise InputError(f"{where}: expected a number of residues or a range low-high such as 70-100")
        lo, hi = int(parts[0]), int(parts[-1])
    elif isinstance(length, (tuple, list)) and len(length) == 2 and all(_is_int(v) for v in length):
        lo, hi = int(length[0]), int(length[1])
    elif _is_int(length):
        lo = hi = int(length)  # type: ignore[arg-type]
    else:
        raise InputError(f"{where}: expected a number of residues, a range such as '70-100' or a (low, high) pair")
    if lo < 1:
        raise InputError(f"{where}: a scaffold needs at least 1 residue; give a positive length")
    if hi < lo:
        raise InputError(f"{where}: reversed range; write it low-high ({hi}-{lo})")
    return lo, hi


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _validate(spec: ContigSpec) -> None:
    """Every rule a :class:`ContigSpec` obeys, however it was built."""
    segs = spec.segments
    if not segs:
        raise InputError("contig is empty; give segments such as '10-40/A3-22/10-40'")
    for s in segs:
        if isinstance(s, FreeSegment):
            if not (_is_int(s.low) and _is_int(s.high)) or s.low < 0 or s.high < s.low or s.high == 0:
                raise InputError(f"contig {spec}: free segment {s} must be 0 <= low <= high, high > 0; "
                                 "e.g. 10-40")
        elif isinstance(s, MotifSegment):
            if not (isinstance(s.chain, str) and len(s.chain) == 1 and s.chain.isascii() and s.chain.isupper()):
                raise InputError(f"contig {spec}: motif chain {s.chain!r} must be one upper-case letter")
            if not (_is_int(s.start) and _is_int(s.end)) or s.start < 0 or s.end < s.start:
                raise InputError(f"contig {spec}: motif segment {s} must be start <= end, both >= 0")
        else:
            raise InputError(f"contig segments must be FreeSegment or MotifSegment, got {type(s).__name__}")
    motif = spec.motif_segments
    if not motif:
        raise InputError(f"contig {spec} has no motif segment (such as A3-22); for unconditional samples give "
                         "a length instead of a contig")
    for i, a in enumerate(motif):
        for b in motif[i + 1:]:
            if a.chain == b.chain and a.start <= b.end and b.start <= a.end:
                both = f"{a.chain}{max(a.start, b.start)}-{min(a.end, b.end)}"
                raise InputError(f"contig {spec}: motif segments {a} and {b} overlap (residues {both}); each "
                                 "residue can be placed once: shorten or merge them")
    if spec.length is not None:
        lo, hi = spec.free_range()
        m = spec.motif_length
        if spec.length[1] < lo + m or spec.length[0] > hi + m:
            raise InputError(f"length {_range_text(spec.length)} cannot hold contig {spec}: its segments make "
                             f"{lo + m}-{hi + m} residues (motif {m}, free {lo}-{hi}); change the length range "
                             "or the free segments")


def _range_text(r: tuple[int, int]) -> str:
    return f"{r[0]}" if r[0] == r[1] else f"{r[0]}-{r[1]}"


@lru_cache(maxsize=256)
def _ways(free: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, ...]:
    """ways[i][s] = number (float) of tuples of lengths of free segments i.. (each in its range) summing to s."""
    top = sum(hi for _, hi in free)
    ways = [np.zeros(top + 1)]
    ways[0][0] = 1.0
    for lo, hi in reversed(free):
        nxt = np.convolve(ways[0], np.ones(hi - lo + 1))[: top + 1 - lo]
        cur = np.zeros(top + 1)
        cur[lo:lo + len(nxt)] = nxt
        ways.insert(0, cur)
    return tuple(ways)


def _normalise(w: np.ndarray) -> np.ndarray:
    return w / w.sum()


# ------------------------------------------------------------------------------------------------
# The RFdiffusion benchmark
# ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _benchmark() -> dict[str, dict[str, object]]:
    return json.loads(BENCHMARK_FILE.read_text())["problems"]


def benchmark_problems() -> tuple[str, ...]:
    """Names of the RFdiffusion benchmark problems, in the paper's order."""
    return tuple(_benchmark())


def benchmark_problem(name: str) -> tuple[str, ContigSpec]:
    """(PDB id of the motif file, contig) of an RFdiffusion benchmark problem by name (case-insensitive); the
    user supplies the PDB file (by path) to :func:`~structures.proteins.motif.read_motif`."""
    problems = _benchmark()
    key = {k.upper(): k for k in problems}.get(str(name).strip().upper())
    if key is None:
        raise InputError(f"unknown motif-scaffolding problem {name!r}; choose one of {', '.join(problems)}")
    p = problems[key]
    return str(p["pdb_id"]), parse_contig(str(p["contig"]), p.get("length"))  # type: ignore[arg-type]
