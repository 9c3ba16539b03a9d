"""Inputs of ``score proteins`` (issue 25): in a folder each bad entry is one failed row with its reason and the
batch goes on (non-regular files never opened); a single bad file is an InputError; ids are safe names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.proteins.score.inputs import read_protein_input
from protein_files import finishes, pdb_lines, rename, set_x, special_entries, write
from structures.errors import InputError
from structures.ids import safe_id


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Good, NaN, overflowing, CA-missing, MSE and XYZ files, every kind of special entry, a non-UTF-8 name."""
    f = tmp_path / "in"
    special_entries(f)
    good = pdb_lines(tmp_path)
    write(f / "good.pdb", good)
    write(f / "nan.pdb", set_x(good, 3, "CA", "     nan"))
    write(f / "over.pdb", set_x(good, 3, "CA", "12345678"))
    write(f / "noca.pdb", [x for x in good if not (x.startswith("ATOM") and x[12:16] == " CA " and x[22:26] in
                                                  ("   2", "   4"))])
    write(f / "mse.pdb", rename(good, "CYS", "MSE"))
    write(f / "xyz.pdb", rename(good, "GLU", "XYZ"))
    shutil.copy(f / "good.pdb", os.path.join(os.fsencode(f), b"caf\xe9.pdb"))
    return f


def test_every_bad_entry_is_one_row_and_the_batch_goes_on(folder: Path) -> None:
    with pytest.warns(UserWarning, match="mse.pdb: chain A: MSE read as MET"):
        inp = finishes(lambda: read_protein_input(folder))
    rows = dict(zip(inp.ids, inp.problems))
    weird = safe_id(os.fsdecode(b"caf\xe9"))
    assert weird.isascii() and weird.startswith("caf_-")
    assert sorted(rows) == sorted(["dangling", "dir", "fifo", "loop", "good", "nan", "over", "noca", "mse", "xyz",
                                   weird])
    assert {i for i, p in rows.items() if p is None} == {"good", "mse", weird}
    assert "broken symbolic link" in rows["dangling"] and "symbolic link loop" in rows["loop"]
    assert "fifo" in rows["fifo"] and "folder" in rows["dir"]
    assert "residue ASP 3: non-finite" in rows["nan"] and "residue ASP 3: a coordinate of 1.23e+07" in rows["over"]
    assert "residues CYS 2, GLU 4 miss CA" in rows["noca"] and "residue XYZ 4: not a standard" in rows["xyz"]
    assert [inp.chains[i] is None for i in range(len(inp))] == [p is not None for p in inp.problems]


def test_a_single_bad_file_is_an_input_error(folder: Path) -> None:
    assert read_protein_input(folder / "good.pdb").problems == [None]
    for name, text in [("nan", "non-finite"), ("over", "1.23e\\+07"), ("noca", "miss CA"), ("xyz", "XYZ 4"),
                       ("fifo", "fifo"), ("dangling", "broken symbolic link"), ("loop", "symbolic link loop")]:
        with pytest.raises(InputError, match=f"{name}.pdb.*{text}"):
            finishes(lambda name=name: read_protein_input(folder / f"{name}.pdb"))
    with pytest.raises(InputError, match="input not found"):
        read_protein_input(folder / "absent.pdb")


def test_ids_that_clash_are_refused_before_any_work(folder: Path) -> None:
    shutil.copy(folder / "good.pdb", folder / "good.cif")
    with pytest.raises(InputError, match="share the id 'good'"):
        read_protein_input(folder)
