"""Deduplication (workflows.design.dedupe): the greedy rule keeps the first row of each group in table order;
crystals by StructureMatcher (a translated copy and a supercell of a crystal are duplicates, other crystals are
not), proteins by TM-score (a rigidly moved copy of a chain is a duplicate, another chain is not)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from structures.data import load_crystals, load_proteins
from structures.proteins.inputs import as_backbone_chain
from structures.proteins.io import write_structure
from workflows.design.dedupe import deduplicate, keep_first_of_groups
from workflows.design.settings import DeduplicateSettings


def test_keep_first_of_groups() -> None:
    same = lambda a, b: a // 10 == b // 10  # noqa: E731 - groups of tens
    assert keep_first_of_groups([11, 25, 13, None, 29, 31, None], same).tolist() == [True, True, False, True, False,
                                                                                      True, True]


def test_crystal_duplicates(tmp_path: Path) -> None:
    a, b, c = load_crystals("perov_5", "val", limit=3).structures
    moved = a.copy()
    moved.translate_sites(list(range(len(moved))), [0.25, 0.1, 0.0])
    files = {"a": a, "b": b, "moved": moved, "c": c, "super": a * (2, 1, 1)}
    for k, s in files.items():
        s.to(filename=str(tmp_path / f"{k}.cif"))
    table = pd.DataFrame({"id": ["b", "a", "moved", "c", "super", "gone"]})
    where = lambda i: tmp_path / f"{i}.cif" if (tmp_path / f"{i}.cif").exists() else None  # noqa: E731
    kept = deduplicate(table, where, "crystals", DeduplicateSettings())
    assert kept["id"].tolist() == ["b", "a", "c", "gone"]  # three compositions; a missing file is kept
    strict = deduplicate(table, where, "crystals", DeduplicateSettings(ltol=1e-3, stol=1e-3, angle_tol=1e-3))
    assert "moved" not in strict["id"].tolist()  # a translation is the same crystal at any tolerance


def test_protein_duplicates(tmp_path: Path) -> None:
    data = load_proteins()
    chains = [as_backbone_chain("chain", data[i]) for i in range(2)]
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    moved = replace(chains[0], coords=chains[0].coords @ rot.T + 5.0)
    for name, ch in (("x", chains[0]), ("y", chains[1]), ("x_moved", moved)):
        write_structure(tmp_path / f"{name}.pdb", ch)
    table = pd.DataFrame({"id": ["x", "y", "x_moved"]})
    kept = deduplicate(table, lambda i: tmp_path / f"{i}.pdb", "proteins", DeduplicateSettings(tm_threshold=0.5))
    assert kept["id"].tolist() == ["x", "y"]
    strict = deduplicate(table, lambda i: tmp_path / f"{i}.pdb", "proteins", DeduplicateSettings(tm_threshold=0.99))
    assert strict["id"].tolist() == ["x", "y"]  # a rigid motion keeps TM-score 1
