"""Decoding token sequences of the KO E.2 crystal vocabulary (:mod:`structures.crystals.vocabulary`) into
crystals, vectorised over a batch. Decoding never raises on model output: a malformed row gets a
:class:`DecodeFailure` with a typed :class:`FailureReason` (PAD inside an atom, token of the wrong kind, MASK
left over, degenerate or impossible lattice, ...), checked in the order of :class:`FailureReason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Sequence

import numpy as np

from structures.crystals.vocabulary import (BOS, ELEMENT_OFFSET, LATTICE_TOKENS, MIN_VOLUME, TOKEN_KIND,
                                            TOKENS_PER_ATOM, VOCAB_SIZE, TokenKind, ids_to_values, position_kinds,
                                            vocabulary)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from pymatgen.core import Structure


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
