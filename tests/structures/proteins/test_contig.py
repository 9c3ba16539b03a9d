"""Contig strings (RFdiffusion's syntax): parsing, every refusal with its message, seeded draws and their law, and
the RFdiffusion benchmark's problems."""

from __future__ import annotations

from collections import Counter
from itertools import product

import numpy as np
import pytest

from structures.errors import InputError
from structures.proteins.contig import (ContigDraw, ContigSpec, FreeSegment, MotifSegment, benchmark_problem,
                                        benchmark_problems, parse_contig)

GOOD = [  # text, length, canonical form, total range
    ("10-40/A3-22/10-40", None, "10-40/A3-22/10-40", (40, 100)),
    ("[10-40/A3-22/10-40]", None, "10-40/A3-22/10-40", (40, 100)),
    ("  5-15/A10-25/10-30/B3-9/5-15 ", None, "5-15/A10-25/10-30/B3-9/5-15", (43, 83)),
    ("20/A1-10", None, "20/A1-10", (30, 30)),
    ("A1-7/20/A28-79", None, "A1-7/20/A28-79", (79, 79)),
    ("10-20/A38/15-30/A14-14/15-30/A99/10-20", None, "10-20/A38-38/15-30/A14-14/15-30/A99-99/10-20", (53, 103)),
    ("10-40/A3-22/10-40", "70-100", "10-40/A3-22/10-40", (70, 100)),
    ("10-40/A3-22/10-40", "50-200", "10-40/A3-22/10-40", (50, 100)),
    ("0-122/B25-46/0-122", 128, "0-122/B25-46/0-122", (128, 128)),
    ("0-5/A3-22:seq/0-5", (22, 25), "0-5/A3-22:seq/0-5", (22, 25)),
    ("A3-22/B1-4:seq", "24", "A3-22/B1-4:seq", (24, 24)),
    ("A5-9/A1-4", None, "A5-9/A1-4", (9, 9)),  # order of the contig, not of the file
]


@pytest.mark.parametrize("text,length,canonical,total", GOOD)
def test_good_contigs_parse_to_their_canonical_form(text, length, canonical, total):
    spec = parse_contig(text, length)
    assert str(spec) == canonical and spec.total_range() == total
    assert parse_contig(str(spec), spec.length) == spec  # canonical text parses back to the same spec


def test_segments_and_sequence_fixing():
    spec = parse_contig("5-15/A10-25:seq/10-30/B3-9/5-15", "40-80")
    assert spec.segments == (FreeSegment(5, 15), MotifSegment("A", 10, 25, True), FreeSegment(10, 30),
                             MotifSegment("B", 3, 9, False), FreeSegment(5, 15))
    assert spec.length == (40, 80) and spec.motif_length == 23 and spec.free_range() == (20, 60)
    assert [s.fix_sequence for s in spec.with_motif_sequence().motif_segments] == [True, True]
    assert str(spec.with_motif_sequence(False)) == "5-15/A10-25/10-30/B3-9/5-15"
    assert spec.describe() == "5-15/A10-25:seq/10-30/B3-9/5-15 (length 40-80)"


BAD = [  # text, length, what the message must say
    ("", None, "is empty"),
    ("  []  ", None, "is empty"),
    ("10-40//A3-22", None, "segment 2 is empty"),
    ("10-40/A3-22/", None, "segment 3 is empty"),
    ("/A3-22", None, "character 1: segment 1 is empty"),
    ("10-40/A3-x2/10-40", None, "segment 2 'A3-x2', character 10: expected a number after '-'"),
    ("10-40/A3-22/10-4O", None, "segment 3 '10-4O', character 17: unexpected 'O'"),
    ("-5/A3-22", None, "character 1: a negative length"),
    ("5--10/A3-22", None, "character 3: a negative number"),
    ("10-/A3-22", None, "expected a number after '-'"),
    ("40-10/A3-22", None, "reversed range 40-10; write it low-high (10-40)"),
    ("10/A22-3", None, "reversed residue range 22-3; write it low-high (A3-22)"),
    ("0/A3-22", None, "an empty free segment"),
    ("0-0/A3-22", None, "an empty free segment"),
    ("10/a3-22", None, "chain 'a' is lower case"),
    ("10/AB3-22", None, "chain ids are one letter"),
    ("10/A", None, "expected a residue number after the chain"),
    ("10/A52A-60", None, "insertion codes are not supported"),
    ("10/A3-22:SEQ", None, "unexpected ':SEQ'"),
    ("10/A3-22 /5", None, "character 9: whitespace inside a contig"),
    ("E400-510/0 20-30/A24-42/4-10/A64-82/0-5", None, "several chains"),
    ("10-40/20", None, "has no motif segment"),
    ("10/A3-22/5/A20-30/5", None, "motif segments A3-22 and A20-30 overlap (residues A20-22)"),
    ("A3-22/A3-22", None, "overlap"),
    ("10-40/A3-22/10-40", "30-35", "length 30-35 cannot hold contig 10-40/A3-22/10-40: its segments make 40-100"),
    ("10-40/A3-22/10-40", 120, "cannot hold"),
    ("10-40/A3-22/10-40", "100-70", "reversed range; write it low-high (70-100)"),
    ("10-40/A3-22/10-40", "0", "at least 1 residue"),
    ("10-40/A3-22/10-40", "70-", "expected a number of residues or a range low-high"),
    ("10-40/A3-22/10-40", 7.5, "expected a number of residues"),
    ("10-40/A3-22/10-40", True, "expected a number of residues"),
]


@pytest.mark.parametrize("text,length,message", BAD)
def test_bad_contigs_are_refused_with_a_one_line_message(text, length, message):
    with pytest.raises(InputError) as err:
        parse_contig(text, length)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_spec_built_in_python_is_validated_the_same_way():
    with pytest.raises(InputError, match="overlap"):
        ContigSpec((MotifSegment("A", 1, 10), FreeSegment(5, 5), MotifSegment("A", 10, 12)))
    with pytest.raises(InputError, match="free segment 9-3"):
        ContigSpec((FreeSegment(9, 3), MotifSegment("A", 1, 10)))
    with pytest.raises(InputError, match="cannot hold"):
        ContigSpec((FreeSegment(1, 3), MotifSegment("A", 1, 10)), length=(20, 30))
    with pytest.raises(InputError, match="must be a string"):
        parse_contig(None)  # type: ignore[arg-type]


BCF = "8-15/A92-99/16-30/A123-130/16-30/A47-54/16-30/A18-25/8-15"


@pytest.mark.parametrize("text,length", [(t, n) for t, n, _, _ in GOOD] + [(BCF, "100-110")])
def test_draws_are_reproducible_and_respect_every_range(text, length):
    spec = parse_contig(text, length)
    lo, hi = spec.total_range()
    draws = [spec.draw(seed) for seed in range(40)]
    assert [str(d) for d in draws] == [str(spec.draw(np.random.default_rng(seed))) for seed in range(40)]
    for d in draws:
        assert lo <= len(d) <= hi
        for seg, n in zip(spec.segments, d.lengths):
            assert (seg.low <= n <= seg.high) if isinstance(seg, FreeSegment) else n == seg.length
        # motif residues appear in contig order, each once, segment after segment
        assert (d.motif_index[d.motif_mask] == np.arange(spec.motif_length)).all()
        starts = np.cumsum((0,) + d.lengths[:-1])
        for seg, a, n in zip(spec.segments, starts, d.lengths):
            assert d.motif_mask[a:a + n].all() if isinstance(seg, MotifSegment) else not d.motif_mask[a:a + n].any()
        assert parse_contig(str(d)).total_range() == (len(d), len(d))  # the draw is itself a contig
        assert d.to_dict()["length"] == len(d)
    if hi > lo:
        assert len({str(d) for d in draws}) > 1


def test_draws_follow_rfdiffusions_law():
    """Uniform over the tuples of free lengths whose total is in range (what RFdiffusion's rejection gives)."""
    spec = parse_contig("0-3/A1-2/0-3", "4-5")
    allowed = [(a, 2, b) for a, b in product(range(4), range(4)) if 4 <= a + b + 2 <= 5]
    rng = np.random.default_rng(0)
    n = 7000
    counts = Counter(spec.draw(rng).lengths for _ in range(n))
    assert set(counts) == set(allowed) and len(allowed) == 7
    expected = n / len(allowed)
    assert all(abs(c - expected) < 4 * np.sqrt(expected) for c in counts.values()), counts


def test_a_forced_total_length():
    spec = parse_contig("10-40/A3-22/10-40", "50-90")
    assert all(len(spec.draw(s, length=77)) == 77 for s in range(10))
    with pytest.raises(InputError, match="length 95: contig 10-40/A3-22/10-40 \\(length 50-90\\) makes scaffolds "
                                         "of 50-90 residues"):
        spec.draw(0, length=95)


def test_a_draw_checks_its_lengths():
    spec = parse_contig("10-40/A3-22/10-40")
    with pytest.raises(ValueError, match="cannot have 5"):
        ContigDraw(spec, (5, 20, 20))
    with pytest.raises(ValueError, match="has 20 residues"):
        ContigDraw(spec, (10, 19, 20))


EXPECTED_TOTALS = {  # RFdiffusion, Supplementary Methods Table 9: total scaffold lengths
    "1PRW": (60, 105), "1BCF": (96, 152), "5TPN": (50, 75), "5IUS": (57, 142), "3IXT": (50, 75), "5YUI": (50, 100),
    "1QJG": (53, 103), "1YCR": (40, 89), "2KL8": (79, 79), "7MRX_60": (60, 60), "7MRX_85": (85, 85),
    "7MRX_128": (128, 128), "4JHW": (60, 90), "4ZYP": (35, 50), "5WN9": (40, 50), "6VW1": (62, 83),
    "5TRV_short": (56, 56), "5TRV_med": (86, 86), "5TRV_long": (116, 116), "6E6R_short": (48, 48),
    "6E6R_med": (78, 78), "6E6R_long": (108, 108), "6EXZ_short": (50, 50), "6EXZ_med": (80, 80),
    "6EXZ_long": (110, 110),
}


def test_the_rfdiffusion_benchmark_problems_parse():
    assert benchmark_problems() == tuple(EXPECTED_TOTALS)
    for name, total in EXPECTED_TOTALS.items():
        pdb_id, spec = benchmark_problem(name)
        assert pdb_id == name.split("_")[0] and spec.total_range() == total, name
        assert len(spec.draw(0)) in range(total[0], total[1] + 1)
    assert benchmark_problem("5trv_med") == benchmark_problem("5TRV_med")
    with pytest.raises(InputError, match="unknown motif-scaffolding problem '9XYZ'; choose one of 1PRW, 1BCF"):
        benchmark_problem("9XYZ")
