"""The 878-token crystal vocabulary of KO appendix E.2 and a lossy-but-faithful tokenizer.

Vocabulary (KO E.2, the ids follow the paper's order ``500 + 180 + 101 + 94 + 3 = 878``)::

    ids   0..499   lengths   "0.0" .. "49.9"   (Angstrom, step 0.1)
    ids 500..679   angles    "0" .. "179"      (degrees, step 1)
    ids 680..780   fractions "0.00" .. "0.99", "1.00"
    ids 781..874   elements  H (Z=1) .. Pu (Z=94)   (pymatgen symbols)
    875 BOS, 876 MASK, 877 PAD

Sequence of a crystal with ``a`` atoms (length ``6 + 4a``, KO E.2)::

    [len_a, len_b, len_c, alpha, beta, gamma, (Z_1, x_1, y_1, z_1), ..., (Z_a, x_a, y_a, z_a)]

Padded to ``max_atoms`` with PAD (four PAD per empty atom slot, always trailing).

Canonical cell (how a Structure is turned into a unique token sequence):

1. the Niggli-reduced cell (pymatgen ``get_reduced_structure("niggli")``): unique up to the
   lattice's orientation, angles all acute or all obtuse and typically in [60, 120] degrees, so
   every angle is representable; lengths must quantise to <= 49.9 Angstrom or encoding fails;
2. fractional coordinates wrapped into [0, 1); a coordinate that quantises to 1.00 is stored as
   0.00 (the same point of the periodic crystal), so the encoder never emits "1.00" (the decoder
   accepts it);
3. quantisation: ``rounding="nearest"`` (default; halves the error of the paper's rule) or
   ``rounding="truncate"`` (Gruver et al. 2024 / KO E.2: lengths truncated to 0.1 Angstrom, angles
   to integers, fractions to 0.01);
4. atoms sorted by (Z, x-token, y-token, z-token). The models are permutation invariant; this
   order only makes the stored sequence unique.

Decoding never raises on model output: :func:`decode` returns a :class:`DecodeFailure` with a
typed :class:`FailureReason` for malformed sequences (PAD inside an atom, token of the wrong
kind, MASK left over, degenerate or impossible lattice, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from pymatgen.core import Structure

Rounding = Literal["nearest", "truncate"]
Cell = Literal["niggli", "as_is"]

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

N_LENGTH, N_ANGLE, N_FRAC, N_ELEMENT, N_SPECIAL = 500, 180, 101, 94, 3
LENGTH_OFFSET = 0
ANGLE_OFFSET = LENGTH_OFFSET + N_LENGTH  # 500
FRAC_OFFSET = ANGLE_OFFSET + N_ANGLE  # 680
ELEMENT_OFFSET = FRAC_OFFSET + N_FRAC  # 781
BOS = ELEMENT_OFFSET + N_ELEMENT  # 875
MASK = BOS + 1  # 876
PAD = BOS + 2  # 877
VOCAB_SIZE = PAD + 1  # 878
MAX_Z = N_ELEMENT  # Pu
LENGTH_STEP, ANGLE_STEP, FRAC_STEP = 0.1, 1.0, 0.01
LATTICE_TOKENS = 6
TOKENS_PER_ATOM = 4
MIN_VOLUME = 0.1  # Angstrom^3, the CDVAE structural-validity floor


class TokenKind(IntEnum):
    """Kind of a token id (``TOKEN_KIND[id]``)."""

    LENGTH = 0
    ANGLE = 1
    FRAC = 2
    ELEMENT = 3
    BOS = 4
    MASK = 5
    PAD = 6


def _build_tokens() -> tuple[str, ...]:
    from pymatgen.core.periodic_table import Element

    lens = [f"{i / 10:.1f}" for i in range(N_LENGTH)]  # KO E.2, verbatim
    angles = [str(x) for x in range(N_ANGLE)]
    frac = [f"0.{i:02d}" for i in range(100)] + ["1.00"]
    atoms = [Element.from_Z(z).name for z in range(1, MAX_Z + 1)]
    return tuple(lens + angles + frac + atoms + ["BOS", "MASK", "PAD"])


TOKEN_KIND = np.concatenate(
    [
        np.full(N_LENGTH, TokenKind.LENGTH),
        np.full(N_ANGLE, TokenKind.ANGLE),
        np.full(N_FRAC, TokenKind.FRAC),
        np.full(N_ELEMENT, TokenKind.ELEMENT),
        np.array([TokenKind.BOS, TokenKind.MASK, TokenKind.PAD]),
    ]
).astype(np.int8)  # [878]


class CrystalVocabulary:
    """The 878 token strings of KO E.2 with id <-> string maps (built lazily; needs pymatgen)."""

    def __init__(self) -> None:
        self.tokens: tuple[str, ...] = _build_tokens()
        # "0" .. "179" are angles and "0.0".."49.9" lengths: strings are unique per kind only for
        # the numeric ranges that overlap ("1.00" vs "1.0"), so key the map by (kind, string).
        self._index = {(int(TOKEN_KIND[i]), t): i for i, t in enumerate(self.tokens)}
        assert len(self.tokens) == VOCAB_SIZE

    def __len__(self) -> int:
        return VOCAB_SIZE

    def id_to_token(self, i: int) -> str:
        return self.tokens[i]

    def token_to_id(self, token: str, kind: TokenKind) -> int:
        try:
            return self._index[(int(kind), token)]
        except KeyError:
            raise KeyError(f"{token!r} is not a {kind.name} token of the KO E.2 vocabulary") from None

    def to_strings(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        return [self.tokens[int(i)] if 0 <= int(i) < VOCAB_SIZE else f"<{int(i)}?>" for i in ids]


_VOCAB: CrystalVocabulary | None = None


def vocabulary() -> CrystalVocabulary:
    """The shared :class:`CrystalVocabulary` (built on first use)."""
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = CrystalVocabulary()
    return _VOCAB


def sequence_length(num_atoms: int) -> int:
    """Tokens of a crystal with ``num_atoms`` atoms: ``6 + 4 a`` (KO E.2)."""
    return LATTICE_TOKENS + TOKENS_PER_ATOM * num_atoms


def position_kinds(max_atoms: int) -> np.ndarray:
    """Expected :class:`TokenKind` at each of the ``6 + 4 max_atoms`` positions."""
    atom = [TokenKind.ELEMENT, TokenKind.FRAC, TokenKind.FRAC, TokenKind.FRAC]
    return np.array([TokenKind.LENGTH] * 3 + [TokenKind.ANGLE] * 3 + atom * max_atoms, dtype=np.int8)


def allowed_token_mask(max_atoms: int) -> np.ndarray:
    """[6 + 4A, 878] bool: the ids a *valid* sequence may hold at each position (PAD allowed in
    atom slots). Useful to restrict a model's logits to well-typed tokens."""
    kinds = position_kinds(max_atoms)
    allowed = kinds[:, None] == TOKEN_KIND[None, :]
    allowed[LATTICE_TOKENS:, PAD] = True
    return allowed


def transform_fractions(tokens: "torch.Tensor", shift: "torch.Tensor", invert: "torch.Tensor | None" = None
                        ) -> "torch.Tensor":
    """Move the origin of token sequences: x -> (+-x + 0.01 * shift) mod 1 on every fractional coordinate.

    ``tokens`` ``[B, 6 + 4A]``, ``shift`` ``[B, 3]`` integer grid steps per axis, ``invert`` ``[B]`` bool
    (x -> -x first). The lattice tokens and the elements are unchanged. On the 0.01 grid both maps are
    exact: a shift gives the same periodic crystal with another origin, an inversion its mirror image
    (same lattice, same energy). They are the symmetries used to augment training data; the atoms are
    no longer in canonical order, which the permutation-invariant models do not see. PAD, MASK and
    any non-fraction token stay as they are.
    """
    import torch

    b, length = tokens.shape
    n_atoms = (length - LATTICE_TOKENS) // TOKENS_PER_ATOM
    atoms = tokens[:, LATTICE_TOKENS:].reshape(b, n_atoms, TOKENS_PER_ATOM)  # [B, A, 4]
    frac = atoms[..., 1:]  # [B, A, 3]
    is_frac = (frac >= FRAC_OFFSET) & (frac < FRAC_OFFSET + N_FRAC)
    q = (frac - FRAC_OFFSET) % (N_FRAC - 1)  # "1.00" is "0.00" periodically
    if invert is not None:
        q = torch.where(invert[:, None, None], (-q) % (N_FRAC - 1), q)
    q = (q + shift.to(q.dtype)[:, None, :]) % (N_FRAC - 1)
    atoms = torch.cat([atoms[..., :1], torch.where(is_frac, q + FRAC_OFFSET, frac)], dim=-1)
    return torch.cat([tokens[:, :LATTICE_TOKENS], atoms.reshape(b, -1)], dim=1)


# ---------------------------------------------------------------------------------------------
# Quantisation (vectorised)
# ---------------------------------------------------------------------------------------------


def _quantize(x: np.ndarray, step: float, rounding: Rounding) -> np.ndarray:
    y = np.asarray(x, dtype=np.float64) / step
    # a tiny epsilon keeps values like 0.3 / 0.01 = 29.999999 on the intended bin when truncating
    q = np.floor(y + 1e-6) if rounding == "truncate" else np.floor(y + 0.5)
    return q.astype(np.int64)


def lengths_to_ids(lengths: np.ndarray, rounding: Rounding = "nearest") -> np.ndarray:
    """Angstrom -> length-token ids (may fall outside the vocabulary; callers check)."""
    return LENGTH_OFFSET + _quantize(lengths, LENGTH_STEP, rounding)


def angles_to_ids(angles: np.ndarray, rounding: Rounding = "nearest") -> np.ndarray:
    return ANGLE_OFFSET + _quantize(angles, ANGLE_STEP, rounding)


def fracs_to_ids(frac: np.ndarray, rounding: Rounding = "nearest") -> np.ndarray:
    """Fractional coordinates (any real) -> ids of the wrapped coordinate in 0.00..0.99."""
    q = _quantize(np.mod(frac, 1.0), FRAC_STEP, rounding) % 100  # 1.00 == 0.00 periodically
    return FRAC_OFFSET + q


def ids_to_values(ids: np.ndarray) -> np.ndarray:
    """Numeric value of length / angle / fraction ids (float64; NaN for other kinds)."""
    ids = np.asarray(ids)
    out = np.full(ids.shape, np.nan)
    kind = TOKEN_KIND[np.clip(ids, 0, VOCAB_SIZE - 1)]
    ok = (ids >= 0) & (ids < VOCAB_SIZE)
    m = ok & (kind == TokenKind.LENGTH)
    out[m] = (ids[m] - LENGTH_OFFSET) * LENGTH_STEP
    m = ok & (kind == TokenKind.ANGLE)
    out[m] = (ids[m] - ANGLE_OFFSET) * ANGLE_STEP
    m = ok & (kind == TokenKind.FRAC)
    out[m] = (ids[m] - FRAC_OFFSET) * FRAC_STEP
    return out


# ---------------------------------------------------------------------------------------------
# Canonical cell and encoding
# ---------------------------------------------------------------------------------------------


class EncodeError(ValueError):
    """A structure that the KO E.2 vocabulary cannot represent (message says why)."""


@dataclass
class CanonicalCrystals:
    """Continuous canonical-cell arrays of a batch (Niggli cell, ``frac`` wrapped to [0, 1)).

    Sites are in the cell's own order from :func:`canonical_arrays` and in the canonical storage
    order (the order of the tokens) from :func:`tokenize_arrays`. Padded slots hold 0.
    """

    lattice_params: np.ndarray  # [B, 6] a, b, c (Angstrom), alpha, beta, gamma (degrees)
    frac: np.ndarray  # [B, A, 3]
    atomic_numbers: np.ndarray  # [B, A] int64, 0 = empty slot
    num_atoms: np.ndarray  # [B] int64


@dataclass
class CrystalTokenBatch:
    """Padded token sequences of a batch of crystals.

    ``tokens`` [B, 6 + 4A] int64; ``atom_mask`` [B, A] True for real atoms; ``token_mask``
    [B, 6 + 4A] True for the 6 lattice tokens and the 4 tokens of every real atom.
    """

    tokens: np.ndarray  # [B, 6 + 4A]
    atom_mask: np.ndarray  # [B, A]
    token_mask: np.ndarray  # [B, 6 + 4A]
    num_atoms: np.ndarray  # [B]

    @property
    def max_atoms(self) -> int:
        return self.atom_mask.shape[1]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to_torch(self, device: "torch.device | str | None" = None) -> "CrystalTokenBatch":
        """The same batch with torch tensors (int64 tokens, bool masks)."""
        import torch

        return CrystalTokenBatch(
            tokens=torch.as_tensor(self.tokens, dtype=torch.long, device=device),
            atom_mask=torch.as_tensor(self.atom_mask, dtype=torch.bool, device=device),
            token_mask=torch.as_tensor(self.token_mask, dtype=torch.bool, device=device),
            num_atoms=torch.as_tensor(self.num_atoms, dtype=torch.long, device=device),
        )


def token_mask_from_atom_mask(atom_mask: np.ndarray) -> np.ndarray:
    """[B, A] atom mask -> [B, 6 + 4A] token mask (lattice tokens always on)."""
    atom_mask = np.asarray(atom_mask, dtype=bool)
    b = atom_mask.shape[0]
    return np.concatenate([np.ones((b, LATTICE_TOKENS), bool), np.repeat(atom_mask, TOKENS_PER_ATOM, axis=1)], axis=1)


def masked_template(num_atoms: Sequence[int] | np.ndarray, max_atoms: int) -> CrystalTokenBatch:
    """The source x_0 of a masked discrete flow for given atom counts: MASK on the 6 lattice tokens
    and the 4 tokens of each of the first ``num_atoms[i]`` atoms, PAD elsewhere (KO E.2 mask source).
    Draw ``num_atoms`` from the training set's distribution (``TokenizedCrystals.sample_num_atoms``)."""
    n = np.asarray(num_atoms, dtype=np.int64)
    if len(n) and (n.min() < 1 or n.max() > max_atoms):
        raise ValueError(f"atom counts must be in 1..{max_atoms}, got {n.min()}..{n.max()}")
    atom_mask = np.arange(max_atoms)[None, :] < n[:, None]
    token_mask = token_mask_from_atom_mask(atom_mask)
    return CrystalTokenBatch(tokens=np.where(token_mask, MASK, PAD).astype(np.int64), atom_mask=atom_mask,
                             token_mask=token_mask, num_atoms=n)


def canonical_cell(structure: "Structure", cell: Cell = "niggli") -> "Structure":
    """The canonical cell of ``structure`` (Niggli reduced, frac coords wrapped to [0, 1)).

    Raises:
        EncodeError: disordered sites, elements beyond Pu, or a lattice pymatgen cannot reduce.
    """
    from pymatgen.core import Structure

    if not structure.is_ordered:
        raise EncodeError(f"{structure.formula}: partially occupied (disordered) sites have no tokens; "
                          "order the structure first (e.g. OrderDisorderedStructureTransformation)")
    if len(structure) == 0:
        raise EncodeError("empty structure (no sites)")
    zs = [sp.Z for sp in structure.species]
    if max(zs) > MAX_Z:
        raise EncodeError(f"{structure.formula}: element Z={max(zs)} is beyond Pu (Z=94), the last "
                          "element token of KO E.2")
    if cell == "niggli":
        try:
            structure = structure.get_reduced_structure("niggli")
        except Exception as exc:  # pymatgen raises ValueError/ArithmeticError on degenerate lattices
            raise EncodeError(f"{structure.formula}: Niggli reduction failed ({exc})") from exc
    elif cell != "as_is":
        raise ValueError(f"cell must be 'niggli' or 'as_is', got {cell!r}")
    frac = np.mod(structure.frac_coords, 1.0)
    frac[frac >= 1.0] = 0.0  # mod can return 1.0 for -1e-17
    return Structure(structure.lattice, structure.species, frac, coords_are_cartesian=False)


def canonical_arrays(structures: Sequence["Structure"], max_atoms: int | None = None,
                     cell: Cell = "niggli") -> CanonicalCrystals:
    """Continuous canonical-cell arrays (site order as in each canonical cell, not yet sorted).

    Raises:
        EncodeError: a structure has more than ``max_atoms`` atoms or is not representable
            (see :func:`canonical_cell`).
    """
    n = np.array([len(s) for s in structures], dtype=np.int64)
    if max_atoms is None:
        max_atoms = int(n.max()) if len(n) else 0
    if len(n) and n.max() > max_atoms:
        i = int(np.argmax(n))
        raise EncodeError(f"structure {i} ({structures[i].formula}) has {n[i]} atoms, more than "
                          f"max_atoms={max_atoms}; raise max_atoms or drop it")
    b = len(structures)
    params = np.zeros((b, 6))
    frac = np.zeros((b, max_atoms, 3))
    z = np.zeros((b, max_atoms), dtype=np.int64)
    for i, s in enumerate(structures):
        c = canonical_cell(s, cell)
        params[i] = (*c.lattice.abc, *c.lattice.angles)
        frac[i, : n[i]] = c.frac_coords
        z[i, : n[i]] = [sp.Z for sp in c.species]
    return CanonicalCrystals(lattice_params=params, frac=frac, atomic_numbers=z, num_atoms=n)


def tokenize_arrays(canon: CanonicalCrystals, rounding: Rounding = "nearest"
                    ) -> tuple[CanonicalCrystals, CrystalTokenBatch, list[str | None]]:
    """Quantise and sort canonical arrays (vectorised over the batch).

    Returns the arrays in canonical atom order, their tokens, and per row ``None`` or the reason
    the row is not representable (its tokens are then meaningless).
    """
    params, n = canon.lattice_params, canon.num_atoms
    b, max_atoms = canon.atomic_numbers.shape
    len_ids = lengths_to_ids(params[:, :3], rounding)  # [B, 3]
    ang_ids = angles_to_ids(params[:, 3:], rounding)  # [B, 3]
    bad_len = (len_ids > LENGTH_OFFSET + N_LENGTH - 1).any(1) | (len_ids < LENGTH_OFFSET + 1).any(1)
    bad_ang = (ang_ids < ANGLE_OFFSET + 1).any(1) | (ang_ids > ANGLE_OFFSET + N_ANGLE - 1).any(1)
    errors: list[str | None] = [None] * b
    for i in np.flatnonzero(bad_ang):
        errors[i] = (f"lattice angles {np.round(params[i, 3:], 2).tolist()} are not representable "
                     "(1..179 degrees)")
    for i in np.flatnonzero(bad_len):
        errors[i] = (f"canonical lattice lengths {np.round(params[i, :3], 3).tolist()} Angstrom are outside "
                     "the vocabulary's 0.1..49.9 Angstrom")
    len_ids = np.clip(len_ids, LENGTH_OFFSET, LENGTH_OFFSET + N_LENGTH - 1)
    ang_ids = np.clip(ang_ids, ANGLE_OFFSET, ANGLE_OFFSET + N_ANGLE - 1)
    atom_mask = np.arange(max_atoms)[None, :] < n[:, None]  # [B, A]
    frac_ids = fracs_to_ids(canon.frac, rounding)  # [B, A, 3]
    el_ids = ELEMENT_OFFSET + canon.atomic_numbers - 1  # [B, A]

    # canonical order: (Z, x, y, z) tokens; empty slots last (lexsort sorts by the last key first)
    big = VOCAB_SIZE + 1
    keys = [np.where(atom_mask, frac_ids[..., 2], big), np.where(atom_mask, frac_ids[..., 1], big),
            np.where(atom_mask, frac_ids[..., 0], big), np.where(atom_mask, el_ids, big)]
    order = np.lexsort(keys, axis=-1)  # [B, A]
    frac = np.take_along_axis(canon.frac, order[..., None], axis=1)
    frac_ids = np.take_along_axis(frac_ids, order[..., None], axis=1)
    z = np.take_along_axis(canon.atomic_numbers, order, axis=1)
    el_ids = np.take_along_axis(el_ids, order, axis=1)

    atoms = np.concatenate([el_ids[..., None], frac_ids], axis=-1)  # [B, A, 4]
    atoms[~atom_mask] = PAD
    tokens = np.concatenate([len_ids, ang_ids, atoms.reshape(b, -1)], axis=1)
    batch = CrystalTokenBatch(tokens=tokens.astype(np.int64), atom_mask=atom_mask,
                              token_mask=token_mask_from_atom_mask(atom_mask), num_atoms=n)
    sorted_canon = CanonicalCrystals(lattice_params=params, frac=np.where(atom_mask[..., None], frac, 0.0),
                                     atomic_numbers=np.where(atom_mask, z, 0), num_atoms=n)
    return sorted_canon, batch, errors


def canonicalize(structures: Sequence["Structure"], max_atoms: int | None = None,
                 cell: Cell = "niggli", rounding: Rounding = "nearest") -> tuple[CanonicalCrystals, CrystalTokenBatch]:
    """Canonical cells and their tokens, both in the canonical atom order.

    Raises:
        EncodeError: a structure has more than ``max_atoms`` atoms, a lattice length beyond 49.9
            Angstrom (after rounding), or is not representable (see :func:`canonical_cell`).
    """
    canon, batch, errors = tokenize_arrays(canonical_arrays(structures, max_atoms, cell), rounding)
    for i, err in enumerate(errors):
        if err is not None:
            raise EncodeError(f"structure {i} ({structures[i].formula}): {err}")
    return canon, batch


def encode_batch(structures: Sequence["Structure"], max_atoms: int | None = None, cell: Cell = "niggli",
                 rounding: Rounding = "nearest") -> CrystalTokenBatch:
    """Tokens of a batch of structures padded to ``max_atoms`` (default: the batch's largest).

    Raises:
        EncodeError: a structure is not representable (see :func:`canonicalize`).
    """
    return canonicalize(structures, max_atoms, cell, rounding)[1]


def encode(structure: "Structure", cell: Cell = "niggli", rounding: Rounding = "nearest") -> np.ndarray:
    """Token ids of one structure, ``[6 + 4 a]`` int64, no padding and no BOS."""
    return encode_batch([structure], None, cell, rounding).tokens[0]


# ---------------------------------------------------------------------------------------------
# Decoding (vectorised; never raises on model output)
# ---------------------------------------------------------------------------------------------


class FailureReason(str, Enum):
    """Why a token sequence is not a crystal (checked in this order)."""

    BAD_LENGTH = "bad_length"  # sequence length is not 6 + 4a
    OUT_OF_VOCAB = "out_of_vocab"  # an id outside 0..877
    MASK_LEFT = "mask_left"  # a MASK token was never unmasked
    LATTICE_TOKEN_KIND = "lattice_token_kind"  # positions 0-2 not lengths or 3-5 not angles
    PAD_INSIDE_ATOM = "pad_inside_atom"  # an atom slot with 1-3 PAD tokens
    ATOM_AFTER_PADDING = "atom_after_padding"  # a real atom after an all-PAD slot
    ATOM_TOKEN_KIND = "atom_token_kind"  # element/fraction/BOS in the wrong atom position
    NO_ATOMS = "no_atoms"  # every atom slot is PAD
    DEGENERATE_LATTICE = "degenerate_lattice"  # a zero length or volume < MIN_VOLUME
    IMPOSSIBLE_ANGLES = "impossible_angles"  # angles no parallelepiped has (metric not pos. def.)


@dataclass(frozen=True)
class DecodeFailure:
    """A token sequence that is not a crystal, with a typed reason and a human-readable detail."""

    reason: FailureReason
    detail: str

    def __bool__(self) -> bool:  # a failure is falsy, so `if decoded:` reads naturally
        return False


@dataclass
class DecodedCrystals:
    """Vectorised decode of a batch. Rows with ``valid[i] == False`` have ``failures[i]`` set."""

    lattice_params: np.ndarray  # [B, 6]
    frac: np.ndarray  # [B, A, 3]
    atomic_numbers: np.ndarray  # [B, A] int64, 0 = empty slot
    atom_mask: np.ndarray  # [B, A] bool
    valid: np.ndarray  # [B] bool
    failures: list[DecodeFailure | None]

    @property
    def num_atoms(self) -> np.ndarray:  # [B]
        return self.atom_mask.sum(1)

    def __len__(self) -> int:
        return len(self.valid)

    def structure(self, i: int) -> "Structure | DecodeFailure":
        """Row i as a pymatgen Structure, or its :class:`DecodeFailure`."""
        from pymatgen.core import Lattice, Structure

        if not self.valid[i]:
            failure = self.failures[i]
            assert failure is not None
            return failure
        m = self.atom_mask[i]
        lattice = Lattice.from_parameters(*self.lattice_params[i].tolist())
        return Structure(lattice, self.atomic_numbers[i][m].tolist(), self.frac[i][m], coords_are_cartesian=False)

    def structures(self) -> "list[Structure | DecodeFailure]":
        return [self.structure(i) for i in range(len(self))]


def _lattice_volume(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volume (Angstrom^3) and metric positivity of [B, 6] lattice parameters."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    ca, cb, cg = (np.cos(np.radians(params[:, k])) for k in (3, 4, 5))
    g = 1.0 + 2.0 * ca * cb * cg - ca**2 - cb**2 - cg**2  # det of the normalised metric tensor
    return a * b * c * np.sqrt(np.clip(g, 0.0, None)), g > 1e-9


def decode_batch(tokens: "np.ndarray | torch.Tensor", bos: bool = False,
                 min_volume: float = MIN_VOLUME) -> DecodedCrystals:
    """Decode a batch ``[B, 6 + 4A]`` (``[B, 7 + 4A]`` with a leading BOS when ``bos``).

    Never raises on token values: each malformed row gets a :class:`DecodeFailure`.

    Raises:
        ValueError: the array is not 2-D with a width of 6 + 4A (a caller bug, not model output).
    """
    t = tokens.detach().cpu().numpy() if hasattr(tokens, "detach") else np.asarray(tokens)
    if t.ndim != 2:
        raise ValueError(f"decode_batch expects [B, 6 + 4A] token ids, got shape {t.shape}")
    t = t.astype(np.int64)
    if bos:
        t = t[:, 1:]
    width = t.shape[1]
    if width < LATTICE_TOKENS or (width - LATTICE_TOKENS) % TOKENS_PER_ATOM:
        raise ValueError(f"token width {width} is not 6 + 4A{' (+1 BOS)' if bos else ''}")
    bsz, n_atoms = t.shape[0], (width - LATTICE_TOKENS) // TOKENS_PER_ATOM
    in_vocab = (t >= 0) & (t < VOCAB_SIZE)
    kind = np.where(in_vocab, TOKEN_KIND[np.clip(t, 0, VOCAB_SIZE - 1)], -1)  # [B, W]
    expected = position_kinds(n_atoms)  # [W]
    atoms_kind = kind[:, LATTICE_TOKENS:].reshape(bsz, n_atoms, 4)
    is_pad = atoms_kind == TokenKind.PAD  # [B, A, 4]
    slot_pad = is_pad.all(-1)  # [B, A]
    atom_mask = ~is_pad.any(-1)  # [B, A] (partially padded slots are neither)
    # a real atom after an empty slot: cumulative "seen padding" and then a non-pad slot
    seen_pad = np.cumsum(slot_pad, axis=1) > 0
    wrong_kind_atoms = (atoms_kind != expected[LATTICE_TOKENS:].reshape(n_atoms, 4)) & ~is_pad
    values = ids_to_values(t)
    params = values[:, :LATTICE_TOKENS]
    with np.errstate(invalid="ignore"):
        volume, positive = _lattice_volume(np.nan_to_num(params))

    checks: list[tuple[FailureReason, np.ndarray]] = [
        (FailureReason.OUT_OF_VOCAB, ~in_vocab.all(1)),
        (FailureReason.MASK_LEFT, (kind == TokenKind.MASK).any(1)),
        (FailureReason.LATTICE_TOKEN_KIND, (kind[:, :LATTICE_TOKENS] != expected[:LATTICE_TOKENS]).any(1)),
        (FailureReason.PAD_INSIDE_ATOM, (is_pad.any(-1) & ~slot_pad).any(1)),
        (FailureReason.ATOM_AFTER_PADDING, (seen_pad & ~slot_pad).any(1)),
        (FailureReason.ATOM_TOKEN_KIND, wrong_kind_atoms.any((1, 2))),
        (FailureReason.NO_ATOMS, ~atom_mask.any(1)),
        (FailureReason.DEGENERATE_LATTICE, (params[:, :3] <= 0).any(1) | (positive & (volume < min_volume))),
        (FailureReason.IMPOSSIBLE_ANGLES, ~positive),
    ]
    failures: list[DecodeFailure | None] = [None] * bsz
    valid = np.ones(bsz, dtype=bool)
    for reason, bad in checks:
        for i in np.flatnonzero(bad & valid):
            failures[i] = DecodeFailure(reason, _detail(reason, t[i], params[i], volume[i], n_atoms))
        valid &= ~bad

    atoms_t = t[:, LATTICE_TOKENS:].reshape(bsz, n_atoms, 4)
    z = np.where(atom_mask, atoms_t[..., 0] - ELEMENT_OFFSET + 1, 0)
    frac = np.where(atom_mask[..., None], np.nan_to_num(values[:, LATTICE_TOKENS:].reshape(bsz, n_atoms, 4)[..., 1:]), 0.0)
    return DecodedCrystals(lattice_params=np.nan_to_num(params), frac=frac, atomic_numbers=z.astype(np.int64),
                           atom_mask=atom_mask & valid[:, None], valid=valid, failures=failures)


def _detail(reason: FailureReason, row: np.ndarray, params: np.ndarray, volume: float, n_atoms: int) -> str:
    strings = vocabulary().to_strings(row[: min(len(row), 14)])
    head = " ".join(strings) + (" ..." if len(row) > 14 else "")
    if reason in (FailureReason.DEGENERATE_LATTICE, FailureReason.IMPOSSIBLE_ANGLES):
        return (f"{reason.value}: lattice {np.round(params, 2).tolist()} has volume {volume:.3g} Angstrom^3 "
                f"(need >= {MIN_VOLUME} and angles of a real parallelepiped)")
    expected = position_kinds(n_atoms)
    kind = np.where((row >= 0) & (row < VOCAB_SIZE), TOKEN_KIND[np.clip(row, 0, VOCAB_SIZE - 1)], -1)
    pos = {
        FailureReason.OUT_OF_VOCAB: np.flatnonzero((row < 0) | (row >= VOCAB_SIZE)),
        FailureReason.MASK_LEFT: np.flatnonzero(kind == TokenKind.MASK),
        FailureReason.LATTICE_TOKEN_KIND: np.flatnonzero(kind[:LATTICE_TOKENS] != expected[:LATTICE_TOKENS]),
        FailureReason.ATOM_TOKEN_KIND: LATTICE_TOKENS + np.flatnonzero(
            (kind[LATTICE_TOKENS:] != expected[LATTICE_TOKENS:]) & (kind[LATTICE_TOKENS:] != TokenKind.PAD)),
    }.get(reason)
    where = f" at position {int(pos[0])} (token id {int(row[pos[0]])})" if pos is not None and len(pos) else ""
    if reason in (FailureReason.PAD_INSIDE_ATOM, FailureReason.ATOM_AFTER_PADDING):
        pad = (kind[LATTICE_TOKENS:] == TokenKind.PAD).reshape(n_atoms, TOKENS_PER_ATOM)
        full = pad.all(1)
        bad = (pad.any(1) & ~full) if reason == FailureReason.PAD_INSIDE_ATOM else (np.cumsum(full) > 0) & ~full
        j = int(np.flatnonzero(bad)[0])
        where = f" in atom slot {j} (positions {LATTICE_TOKENS + 4 * j}-{LATTICE_TOKENS + 4 * j + 3})"
    return f"{reason.value}{where}; sequence starts: {head}"


def decode(tokens: "Sequence[int] | np.ndarray | torch.Tensor") -> "Structure | DecodeFailure":
    """Decode one sequence (optionally starting with BOS; trailing PAD slots allowed).

    Returns a pymatgen Structure, or a :class:`DecodeFailure` (never raises on token values).
    """
    t = tokens.detach().cpu().numpy() if hasattr(tokens, "detach") else np.asarray(tokens)
    t = np.asarray(t).reshape(-1).astype(np.int64)
    if len(t) and t[0] == BOS:
        t = t[1:]
    if len(t) < LATTICE_TOKENS or (len(t) - LATTICE_TOKENS) % TOKENS_PER_ATOM:
        return DecodeFailure(FailureReason.BAD_LENGTH,
                             f"bad_length: {len(t)} tokens is not 6 + 4a (3 lengths, 3 angles, 4 per atom)")
    return decode_batch(t[None, :]).structure(0)
