"""The one residue order (AF2 / MultiFlow): pinned indices, round trips, no second order left."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO_ROOT

from structures.proteins.dataset import ProteinDataset, sequence_to_aatype
from structures.proteins.residue_constants import (
    MASK_INDEX,
    NUM_TOKENS,
    RESNAMES,
    RESTYPE_1TO3,
    RESTYPE_3TO1,
    RESTYPES,
    UNK_INDEX,
    index_to_letter,
    indices_to_sequence,
    letter_to_index,
    sequence_to_indices,
    three_to_index,
)

ROOT = REPO_ROOT


def test_known_sequence_has_multiflow_indices() -> None:
    # MultiFlow / OpenFold residue_constants.restypes: A R N D C Q E G H I L K M F P S T W Y V
    assert RESTYPES == "ARNDCQEGHILKMFPSTWYV"
    expected = [12, 11, 16, 0, 18, 9, 0, 11, 5, 1]  # M K T A Y I A K Q R
    assert sequence_to_indices("MKTAYIAKQR").tolist() == expected
    assert sequence_to_aatype("MKTAYIAKQR").tolist() == expected
    assert MASK_INDEX == UNK_INDEX == 20 and NUM_TOKENS == 21
    assert sequence_to_indices("AXBZ*").tolist() == [0, 20, 20, 20, 20]


def test_maps_are_consistent() -> None:
    assert [letter_to_index(a) for a in RESTYPES] == list(range(20))
    assert "".join(index_to_letter(i) for i in range(21)) == RESTYPES + "X"
    assert RESNAMES[0] == "ALA" and RESNAMES[19] == "VAL" and len(set(RESNAMES)) == 20
    assert all(RESTYPE_3TO1[RESTYPE_1TO3[a]] == a for a in RESTYPES + "X")
    assert three_to_index("MSE") == letter_to_index("M") and three_to_index("HOH") == 20
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 21, 200)
    assert (sequence_to_indices(indices_to_sequence(idx)) == idx).all()
    with pytest.raises(ValueError):
        indices_to_sequence([21])


def test_dataset_items_use_the_af2_order() -> None:
    from structures.data import ProteinBackboneSet

    seq = "MKTAYIAKQR"
    coords = np.zeros((len(seq), 4, 3), np.float32)
    bb = ProteinBackboneSet(coords=coords, offsets=np.array([0, len(seq)]),
                            sequence=np.frombuffer(seq.encode(), np.uint8).copy(),
                            dssp=np.full(len(seq), ord("-"), np.uint8), pdb_id=np.array(["1abc"]),
                            chain_id=np.array(["A"]), start_resnum=np.array([1], np.int32), source=Path("x"))
    ex = ProteinDataset(bb)[0]
    assert ex.aatype.tolist() == sequence_to_indices(seq).tolist()


def test_no_second_residue_order_in_the_project() -> None:
    """No alphabetical one-letter order and no other list of three-letter names outside residue_constants."""
    alphabetical = "ACDEFGHIKLMNPQRSTVWY"
    offenders = []
    for folder in ("manifolds", "structures", "pipeline", "workflows"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "residue_constants.py":
                continue
            text = path.read_text()
            if alphabetical in text or len(re.findall(r'"(?:ALA|ARG|ASN|GLY|VAL|TRP)"', text)) >= 4:
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"a second residue order survives in {offenders}"
