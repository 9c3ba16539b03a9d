"""KO E.2 crystal tokens: vocabulary, canonical cell, encode/decode, failures, batches, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from structures.crystals import tokens as ct
from structures.crystals.roundtrip import lattice_matrices, roundtrip_report
from structures.data import load_crystals

MATCHER = StructureMatcher()


def triclinic(n: int = 3, species=("Si",), seed: int = 0) -> Structure:
    rng = np.random.default_rng(seed)
    lat = Lattice.from_parameters(4.1, 5.3, 6.7, 71.0, 83.0, 102.0)
    frac = (np.arange(n)[:, None] / n + rng.uniform(0, 0.05, (n, 3))) % 1.0
    return Structure(lat, [species[i % len(species)] for i in range(n)], frac)


# ------------------------------------------------------------------ vocabulary


def test_vocabulary_is_exactly_ko_e2():
    from pymatgen.core.periodic_table import Element

    voc = ct.vocabulary()
    expected = ([f"{i / 10:.1f}" for i in range(500)] + [str(x) for x in range(180)]
                + [f"0.{i:02d}" for i in range(100)] + ["1.00"]
                + [Element.from_Z(z).name for z in range(1, 95)] + ["BOS", "MASK", "PAD"])
    assert list(voc.tokens) == expected
    assert len(voc) == ct.VOCAB_SIZE == 878
    assert voc.tokens[ct.ELEMENT_OFFSET] == "H" and voc.tokens[ct.ELEMENT_OFFSET + 93] == "Pu"
    assert (ct.BOS, ct.MASK, ct.PAD) == (875, 876, 877)
    assert voc.token_to_id("49.9", ct.TokenKind.LENGTH) == 499
    assert voc.token_to_id("1.00", ct.TokenKind.FRAC) == 780
    assert np.bincount(ct.TOKEN_KIND).tolist() == [500, 180, 101, 94, 1, 1, 1]


def test_allowed_token_mask_shapes():
    m = ct.allowed_token_mask(2)
    assert m.shape == (14, 878)
    assert m[0, :500].all() and not m[0, 500:].any()
    assert m[6, ct.ELEMENT_OFFSET:ct.BOS].all() and m[6, ct.PAD] and not m[6, :ct.ELEMENT_OFFSET].any()


def test_quantisation_rules():
    assert ct.lengths_to_ids(np.array([3.04, 3.06]), "nearest").tolist() == [30, 31]
    assert ct.lengths_to_ids(np.array([3.04, 3.09, 0.3]), "truncate").tolist() == [30, 30, 3]
    f = ct.fracs_to_ids(np.array([0.996, -0.001, 1.0, 0.124]), "nearest") - ct.FRAC_OFFSET
    assert f.tolist() == [0, 0, 0, 12]  # 1.00 wraps to 0.00; negative wraps
    assert (ct.fracs_to_ids(np.array([0.999]), "truncate") - ct.FRAC_OFFSET).tolist() == [99]


# ------------------------------------------------------------------ encode / decode edge cases


def test_triclinic_roundtrip_and_canonical_order():
    s = triclinic(6, ("O", "Si"))
    tok = ct.encode(s)
    assert tok.shape == (6 + 4 * 6,)
    z = tok[6::4] - ct.ELEMENT_OFFSET + 1
    assert (np.diff(z) >= 0).all()  # sorted by element
    d = ct.decode(tok)
    assert isinstance(d, Structure) and MATCHER.fit(s, d)
    # permutation of sites does not change the tokens
    perm = Structure.from_sites([s[i] for i in np.random.default_rng(1).permutation(len(s))])
    assert (ct.encode(perm) == tok).all()
    # a different basis of the same lattice gives the same canonical tokens
    assert (ct.encode(s.copy().make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1]])) == tok).all()


@pytest.mark.parametrize("symbol", ["H", "Pu"])
def test_one_atom_cells_at_vocabulary_ends(symbol):
    s = Structure(Lattice.cubic(3.0), [symbol], [[0.5, 0.25, 0.0]])
    tok = ct.encode(s)
    strings = ct.vocabulary().to_strings(tok)
    assert strings[:7] == ["3.0", "3.0", "3.0", "90", "90", "90", symbol]  # Niggli may flip axes
    assert sorted(strings[7:]) == ["0.00", "0.50", "0.75"] or sorted(strings[7:]) == ["0.00", "0.25", "0.50"]
    d = ct.decode(tok)
    assert d.composition.elements == s.composition.elements and len(d) == 1 and MATCHER.fit(s, d)


def test_24_atom_cell_and_padding():
    s = triclinic(24, ("C",), seed=3).copy()
    s.scale_lattice(24 * 9.0)
    batch = ct.encode_batch([s, Structure(Lattice.cubic(3.0), ["H"], [[0, 0, 0]])], max_atoms=24)
    assert batch.tokens.shape == (2, 102)
    assert batch.atom_mask.sum(1).tolist() == [24, 1]
    assert (batch.tokens[1, 10:] == ct.PAD).all() and batch.token_mask[1].sum() == 10
    dec = ct.decode_batch(batch.tokens)
    assert dec.valid.all() and dec.num_atoms.tolist() == [24, 1]
    assert MATCHER.fit(s, dec.structure(0))
    tb = batch.to_torch()
    assert tb.tokens.dtype == torch.long and tb.atom_mask.dtype == torch.bool
    assert ct.decode_batch(tb.tokens).valid.all()  # torch input accepted


def test_unrepresentable_structures_raise_encode_error():
    with pytest.raises(ct.EncodeError, match="beyond Pu"):
        ct.encode(Structure(Lattice.cubic(3.0), ["Am"], [[0, 0, 0]]))
    with pytest.raises(ct.EncodeError, match="49.9"):
        ct.encode(Structure(Lattice.tetragonal(3.0, 60.0), ["C"], [[0, 0, 0]]))
    with pytest.raises(ct.EncodeError, match="disordered"):
        ct.encode(Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]))
    with pytest.raises(ct.EncodeError, match="max_atoms"):
        ct.encode_batch([triclinic(6)], max_atoms=5)


def _valid_tokens() -> np.ndarray:
    return ct.encode(triclinic(2, ("O", "Si")))


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda t: t[:-1], ct.FailureReason.BAD_LENGTH),
        (lambda t: np.r_[t, 5], ct.FailureReason.BAD_LENGTH),
        (lambda t: np.r_[t[:6]], ct.FailureReason.NO_ATOMS),  # 6 tokens: a lattice, no atoms
        (lambda t: _set(t, 7, 9999), ct.FailureReason.OUT_OF_VOCAB),
        (lambda t: _set(t, 7, -1), ct.FailureReason.OUT_OF_VOCAB),
        (lambda t: _set(t, 8, ct.MASK), ct.FailureReason.MASK_LEFT),
        (lambda t: _set(t, 1, ct.ANGLE_OFFSET + 90), ct.FailureReason.LATTICE_TOKEN_KIND),
        (lambda t: _set(t, 4, ct.PAD), ct.FailureReason.LATTICE_TOKEN_KIND),
        (lambda t: _set(t, 8, ct.PAD), ct.FailureReason.PAD_INSIDE_ATOM),
        (lambda t: _set(t, slice(6, 10), ct.PAD), ct.FailureReason.ATOM_AFTER_PADDING),
        (lambda t: _set(t, 6, ct.FRAC_OFFSET), ct.FailureReason.ATOM_TOKEN_KIND),
        (lambda t: _set(t, 7, ct.ELEMENT_OFFSET), ct.FailureReason.ATOM_TOKEN_KIND),
        (lambda t: _set(t, 11, ct.BOS), ct.FailureReason.ATOM_TOKEN_KIND),
        (lambda t: _set(t, slice(6, 14), ct.PAD), ct.FailureReason.NO_ATOMS),
        (lambda t: _set(t, 0, ct.LENGTH_OFFSET), ct.FailureReason.DEGENERATE_LATTICE),
        (lambda t: _set(t, slice(3, 6), ct.ANGLE_OFFSET + 120), ct.FailureReason.IMPOSSIBLE_ANGLES),
        (lambda t: _set(t, slice(3, 6), ct.ANGLE_OFFSET + 170), ct.FailureReason.IMPOSSIBLE_ANGLES),
        (lambda t: _set(t, slice(0, 3), ct.LENGTH_OFFSET + 1), ct.FailureReason.DEGENERATE_LATTICE),
    ],
)
def test_malformed_sequences_decode_to_typed_failures(mutate, reason):
    out = ct.decode(mutate(_valid_tokens().copy()))
    assert isinstance(out, ct.DecodeFailure) and not out
    assert out.reason == reason, out.detail
    assert reason.value in out.detail


def _set(t, i, v):
    t[i] = v
    return t


def test_masked_template_for_sampling():
    t = ct.masked_template([1, 3], max_atoms=4)
    assert t.tokens.shape == (2, 22) and (t.tokens[t.token_mask] == ct.MASK).all()
    assert (t.tokens[~t.token_mask] == ct.PAD).all() and t.token_mask.sum(1).tolist() == [10, 18]
    assert ct.decode(t.tokens[0]).reason == ct.FailureReason.MASK_LEFT  # nothing unmasked yet
    with pytest.raises(ValueError, match="1..4"):
        ct.masked_template([5], max_atoms=4)


def test_bos_is_accepted_and_mixed_batches_keep_valid_rows():
    t = _valid_tokens()
    assert isinstance(ct.decode(np.r_[ct.BOS, t]), Structure)
    bad = t.copy()
    bad[9] = ct.PAD
    dec = ct.decode_batch(np.stack([t, bad, t]))
    assert dec.valid.tolist() == [True, False, True]
    assert dec.failures[1].reason == ct.FailureReason.PAD_INSIDE_ATOM
    assert not dec.atom_mask[1].any()
    with pytest.raises(ValueError, match="6 \\+ 4A"):
        ct.decode_batch(np.zeros((2, 9), dtype=np.int64))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-5, 900), min_size=0, max_size=40))
def test_decode_never_raises_on_arbitrary_ids(ids):
    out = ct.decode(np.array(ids, dtype=np.int64))
    assert isinstance(out, (Structure, ct.DecodeFailure))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6).flatmap(lambda a: st.lists(st.integers(0, 877), min_size=6 + 4 * a, max_size=6 + 4 * a)))
def test_decode_of_well_typed_random_tokens(ids):
    """Any sequence of well-kinded tokens decodes to a Structure or a lattice failure."""
    t = np.array(ids)
    kinds = ct.position_kinds((len(t) - 6) // 4)
    lo = np.array([ct.LENGTH_OFFSET, ct.ANGLE_OFFSET, ct.FRAC_OFFSET, ct.ELEMENT_OFFSET])[kinds]
    size = np.array([ct.N_LENGTH, ct.N_ANGLE, ct.N_FRAC, ct.N_ELEMENT])[kinds]
    t = lo + t % size
    out = ct.decode(t)
    if isinstance(out, ct.DecodeFailure):
        assert out.reason in (ct.FailureReason.DEGENERATE_LATTICE, ct.FailureReason.IMPOSSIBLE_ANGLES)
    else:
        assert len(out) == (len(t) - 6) // 4 and out.volume >= ct.MIN_VOLUME


# ------------------------------------------------------------------ property tests: random valid crystals


@st.composite
def crystals(draw):
    a, b, c = (draw(st.floats(2.5, 15.0)) for _ in range(3))
    al, be, ga = (draw(st.floats(60.0, 120.0)) for _ in range(3))
    _, ok = ct._lattice_volume(np.array([[a, b, c, al, be, ga]]))
    assume(bool(ok[0]))
    lat = Lattice.from_parameters(a, b, c, al, be, ga)
    assume(lat.volume > 5.0)
    n = draw(st.integers(1, 8))
    zs = draw(st.lists(st.integers(1, 94), min_size=n, max_size=n))
    frac = np.array(draw(st.lists(st.tuples(*(st.floats(-0.5, 1.5),) * 3), min_size=n, max_size=n)))
    s = Structure(lat, zs, frac)
    if n > 1:
        d = s.distance_matrix + np.eye(n) * 100
        assume(d.min() > 1.2)  # atoms that are clearly distinct sites
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(crystals())
def test_random_crystals_roundtrip(s):
    tok = ct.encode(s)
    assert ((tok >= 0) & (tok < ct.VOCAB_SIZE)).all()
    assert (ct.TOKEN_KIND[tok] == ct.position_kinds(len(s))).all()
    assert ct.FRAC_OFFSET + 100 not in tok[6:]  # "1.00" is never emitted
    d = ct.decode(tok)
    assert isinstance(d, Structure)
    assert d.composition == s.composition
    canon = ct.canonical_cell(s)
    np.testing.assert_allclose(d.lattice.abc, canon.lattice.abc, atol=0.05 + 1e-9)
    np.testing.assert_allclose(d.lattice.angles, canon.lattice.angles, atol=0.5 + 1e-9)
    assert StructureMatcher(primitive_cell=False).fit(s, d)
    # re-encoding the decoded crystal gives the same crystal (tokens may differ only where the
    # quantised cell sits on a Niggli boundary and reduction picks another basis)
    assert StructureMatcher(primitive_cell=False).fit(d, ct.decode(ct.encode(d)))


def test_lattice_matrices_match_pymatgen():
    p = np.array([[3.0, 4.0, 5.0, 70.0, 80.0, 100.0], [2.0, 2.0, 9.0, 90.0, 90.0, 120.0]])
    for row, m in zip(p, lattice_matrices(p)):
        np.testing.assert_allclose(m, Lattice.from_parameters(*row).matrix, atol=1e-12)


# ------------------------------------------------------------------ real data


@pytest.mark.parametrize("name", ["perov_5", "carbon_24"])
def test_roundtrip_on_real_subset(name):
    ds = load_crystals(name, "test", limit=60)
    rep = roundtrip_report(ds.structures)
    assert rep.n_encoded == rep.n == 60
    assert rep.match_rate >= 0.98, rep.unmatched
    assert rep.n_matched_same_cell == rep.n
    assert rep.max_length_error <= 0.05 + 1e-9 and rep.max_angle_error <= 0.5 + 1e-9
    assert rep.max_site_error < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("name", ["perov_5", "carbon_24"])
@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_roundtrip_full_test_sets(name, rounding):
    ds = load_crystals(name, "test")
    rep = roundtrip_report(ds.structures, rounding=rounding)
    assert rep.match_rate >= 0.99, rep.to_dict()
    assert rep.n_matched_same_cell == rep.n, rep.to_dict()
    step = 1.0 if rounding == "truncate" else 0.5
    assert rep.max_length_error <= 0.1 * step + 1e-9 and rep.max_angle_error <= step + 1e-9


# ------------------------------------------------------------------ symmetries of the token sequence


@pytest.mark.parametrize("name", ["perov_5", "carbon_24"])
def test_origin_shift_and_inversion_give_the_same_crystal_or_its_mirror_image(name):
    structures = load_crystals(name, "test", limit=12).structures
    tok = torch.from_numpy(ct.encode_batch(structures).tokens.astype(np.int64))  # [B, 6 + 4A]
    g = torch.Generator().manual_seed(0)
    shift = torch.randint(0, 100, (len(structures), 3), generator=g)
    invert = torch.arange(len(structures)) % 2 == 1
    out = ct.transform_fractions(tok, shift, invert)
    assert (out[:, :6] == tok[:, :6]).all(), "lattice tokens unchanged"
    assert ((out == ct.PAD) == (tok == ct.PAD)).all() and (out[:, 6::4] == tok[:, 6::4]).all(), "elements, padding"
    assert (torch.as_tensor(ct.TOKEN_KIND)[out] == torch.as_tensor(ct.TOKEN_KIND)[tok]).all()
    assert not (out[:, 6:] == ct.FRAC_OFFSET + 100).any(), "wrapped into 0.00 .. 0.99"
    dec = ct.decode_batch(out).structures()
    for s, d, inv in zip(structures, dec, invert.tolist()):
        ref = ct.decode(ct.encode(s))  # the quantised crystal
        if inv:  # the mirror image: the inverted crystal matches after inverting back
            d = Structure(d.lattice, d.species, -d.frac_coords)
        assert MATCHER.fit(ref, d), (name, s.composition)
    # shifts compose and a full turn is the identity; inversion is an involution
    twice = ct.transform_fractions(ct.transform_fractions(tok, shift), 100 - shift)
    assert (twice == tok).all()
    inv = torch.ones(len(structures), dtype=torch.bool)
    zero = torch.zeros_like(shift)
    assert (ct.transform_fractions(ct.transform_fractions(tok, zero, inv), zero, inv) == tok).all()


def test_transform_fractions_treats_one_as_zero_and_leaves_mask_alone():
    tok = torch.tensor([[10, 20, 30, 590, 590, 590, ct.ELEMENT_OFFSET + 5, ct.FRAC_OFFSET + 100, ct.MASK,
                         ct.FRAC_OFFSET + 99]])
    out = ct.transform_fractions(tok, torch.tensor([[1, 7, 1]]))
    assert out.tolist() == [[10, 20, 30, 590, 590, 590, ct.ELEMENT_OFFSET + 5, ct.FRAC_OFFSET + 1, ct.MASK,
                             ct.FRAC_OFFSET + 0]]
