"""The 878-token crystal vocabulary of KO appendix E.2: ids, token kinds, strings and the quantisation of
lengths, angles and fractional coordinates onto the vocabulary's grids.

Vocabulary (KO E.2, the ids follow the paper's order ``500 + 180 + 101 + 94 + 3 = 878``)::

    ids   0..499   lengths   "0.0" .. "49.9"   (Angstrom, step 0.1)
    ids 500..679   angles    "0" .. "179"      (degrees, step 1)
    ids 680..780   fractions "0.00" .. "0.99", "1.00"
    ids 781..874   elements  H (Z=1) .. Pu (Z=94)   (pymatgen symbols)
    875 BOS, 876 MASK, 877 PAD

Quantisation: ``rounding="nearest"`` (default; halves the error of the paper's rule) or ``rounding="truncate"``
(Gruver et al. 2024 / KO E.2: lengths truncated to 0.1 Angstrom, angles to integers, fractions to 0.01).
Encoding and decoding are in :mod:`structures.crystals.tokens` and :mod:`structures.crystals.decoding`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

Rounding = Literal["nearest", "truncate"]

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
