"""Amino-acid residue constants: the ONE residue order of genmatch.

genmatch indexes amino acids in the AlphaFold2 / OpenFold / MultiFlow order

    ``ARNDCQEGHILKMFPSTWYV``  ->  A=0, R=1, N=2, ..., Y=18, V=19,

and uses index 20 for both "unknown" and MultiFlow's MASK token (MultiFlow maps UNK to the mask
token in its training data and its network has a 21-way amino-acid head). A network that reads
MultiFlow weights sees exactly these indices: a different order (e.g. alphabetical one-letter
codes) would silently permute every embedding row and logit.

Every protein index in the project (data sets, IO, caches, networks) comes from this module.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

RESTYPES = "ARNDCQEGHILKMFPSTWYV"  # AF2 order; position = index
NUM_AA = len(RESTYPES)  # 20 standard amino acids
MASK_INDEX = 20  # MultiFlow's mask token
UNK_INDEX = MASK_INDEX  # unknown residues are mapped to the mask token, as MultiFlow does
NUM_TOKENS = NUM_AA + 1  # 21: the width of the amino-acid head / embedding
UNK_LETTER = "X"

RESTYPE_ORDER: dict[str, int] = {a: i for i, a in enumerate(RESTYPES)}  # one letter -> index

# ProteinMPNN's own token order (alphabetical, X last). It is *not* an index convention of genmatch:
# only the ProteinMPNN adapter (pipeline/proteins/score/mpnn.py) uses it, to translate one-letter
# strings at its boundary. Kept here so that every residue order of the project lives in one module.
PROTEINMPNN_ORDER = "".join(sorted(RESTYPES)) + UNK_LETTER

# One-letter <-> three-letter codes (20 standard + X/UNK), listed in the AF2 order.
RESTYPE_1TO3: dict[str, str] = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU", "G": "GLY",
    "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE", "P": "PRO", "S": "SER",
    "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL", UNK_LETTER: "UNK",
}
RESTYPE_3TO1: dict[str, str] = {v: k for k, v in RESTYPE_1TO3.items()}
RESNAMES: tuple[str, ...] = tuple(RESTYPE_1TO3[a] for a in RESTYPES)  # three-letter names by index

# Common modified residues -> parent amino acid (read with the parent's code; *not* "standard").
MODIFIED_TO_ONE: dict[str, str] = {
    "MSE": "M", "SEP": "S", "TPO": "T", "PTR": "Y", "HYP": "P", "MLY": "K", "M3L": "K", "CSO": "C",
    "CSD": "C", "CME": "C", "KCX": "K", "LLP": "K", "PCA": "E", "SEC": "C", "PYL": "K", "CAS": "C",
    "MLZ": "K", "ALY": "K", "OCS": "C", "HIC": "H", "NLE": "L", "FME": "M", "TYS": "Y", "CGU": "E",
    "HSD": "H", "HSE": "H", "HSP": "H", "HIE": "H", "HID": "H", "HIP": "H",
}

_LUT = np.full(256, UNK_INDEX, dtype=np.int64)  # byte -> index (anything unknown -> 20)
for _a, _i in RESTYPE_ORDER.items():
    _LUT[ord(_a)] = _i
_LETTERS = np.frombuffer((RESTYPES + UNK_LETTER).encode("ascii"), dtype=np.uint8)  # [21] index -> byte


def letter_to_index(letter: str) -> int:
    """One-letter code -> index in ``RESTYPES`` (20 for anything that is not a standard amino acid)."""
    return RESTYPE_ORDER.get(letter.upper(), UNK_INDEX)


def index_to_letter(index: int) -> str:
    """Index 0..19 -> one-letter code; 20 (unknown / mask) -> ``X``."""
    if not 0 <= index <= MASK_INDEX:
        raise ValueError(f"residue index must be in 0..{MASK_INDEX}, got {index}")
    return RESTYPES[index] if index < NUM_AA else UNK_LETTER


def three_to_index(name: str) -> int:
    """Three-letter residue name -> index (modified residues map to their parent; anything else 20)."""
    name = name.upper()
    one = RESTYPE_3TO1.get(name) or MODIFIED_TO_ONE.get(name, UNK_LETTER)
    return letter_to_index(one)


def sequence_to_indices(seq: str) -> np.ndarray:
    """One-letter sequence (upper case) -> [L] int64 indices in the AF2 order (20 for anything else)."""
    return _LUT[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]


def indices_to_sequence(indices: Iterable[int] | np.ndarray) -> str:
    """[L] indices in 0..20 -> one-letter sequence (20 -> ``X``)."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() > MASK_INDEX):
        raise ValueError(f"residue indices must be in 0..{MASK_INDEX}, got range {idx.min()}..{idx.max()}")
    return _LETTERS[idx].tobytes().decode("ascii")
