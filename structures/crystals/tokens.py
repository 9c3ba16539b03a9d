"""A lossy-but-faithful tokenizer of crystals onto the 878-token vocabulary of KO appendix E.2
(:mod:`structures.crystals.vocabulary`: ids, kinds, grids; decoding in :mod:`structures.crystals.decoding`; both
re-exported here).

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

This module encodes; the vocabulary and the quantisation are in :mod:`structures.crystals.vocabulary`, decoding
in :mod:`structures.crystals.decoding`. Both are re-exported here, so ``structures.crystals.tokens`` is the one
import for all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from structures.crystals.decoding import (DecodedCrystals, DecodeFailure, FailureReason,  # noqa: F401 (re-exported)
                                          _lattice_volume, decode, decode_batch)
from structures.crystals.vocabulary import (  # noqa: F401 (re-exported)
    ANGLE_OFFSET, ANGLE_STEP, BOS, ELEMENT_OFFSET, FRAC_OFFSET, FRAC_STEP, LATTICE_TOKENS, LENGTH_OFFSET, LENGTH_STEP,
    MASK, MAX_Z, MIN_VOLUME, N_ANGLE, N_ELEMENT, N_FRAC, N_LENGTH, N_SPECIAL, PAD, TOKEN_KIND, TOKENS_PER_ATOM,
    VOCAB_SIZE, CrystalVocabulary, Rounding, TokenKind, allowed_token_mask, angles_to_ids, fracs_to_ids,
    ids_to_values, lengths_to_ids, position_kinds, sequence_length, transform_fractions, vocabulary)

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from pymatgen.core import Structure

Cell = Literal["niggli", "as_is"]


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
