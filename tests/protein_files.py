"""Small protein structure files for the bad-input tests (issue 25): a well-formed PDB to break line by line,
every kind of non-regular entry, and a guard that fails a call that blocks (a fifo opened for reading)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from structures.proteins.io import BackboneChain, write_structure

SEQ = "ACDEFGHIKL"


def finishes(call: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``call()`` run in a thread that must end within ``timeout`` s (a fifo opened for reading would block)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "blocked: a non-regular file was opened"
    if "error" in out:
        raise out["error"]
    return out["value"]


def backbone(n: int = len(SEQ)) -> np.ndarray:
    """[n, 4, 3] coordinates of a straight, well-formed backbone."""
    x = np.zeros((n, 4, 3), np.float32)
    for i in range(n):
        x[i] = [[3.8 * i, 0, 0], [3.8 * i + 1.46, 0, 0], [3.8 * i + 2.4, 1.0, 0], [3.8 * i + 2.4, 2.2, 0.1]]
    return x


def pdb_lines(tmp_path: Path) -> list[str]:
    write_structure(tmp_path / "template.pdb", BackboneChain.from_coords(backbone(), SEQ))
    return (tmp_path / "template.pdb").read_text().splitlines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def set_x(lines: list[str], residue: int, atom: str, field: str) -> list[str]:
    """The PDB lines with the x column (8 characters) of one atom replaced by ``field``."""
    return [line[:30] + field + line[38:] if line.startswith("ATOM") and int(line[22:26]) == residue
            and line[12:16].strip() == atom else line for line in lines]


def rename(lines: list[str], old: str, new: str, hetatm: bool = True) -> list[str]:
    return [("HETATM" if hetatm else line[:6]) + line[6:17] + new + line[20:] if line[17:20] == old else line
            for line in lines]


def special_entries(folder: Path) -> dict[str, Path]:
    """A dangling link, a symlink loop, a fifo and a folder, each with a structure suffix."""
    folder.mkdir(exist_ok=True)
    os.symlink("missing.pdb", folder / "dangling.pdb")
    os.symlink("loop.pdb", folder / "loop.pdb")
    os.mkfifo(folder / "fifo.pdb")
    (folder / "dir.pdb").mkdir()
    return {n: folder / f"{n}.pdb" for n in ("dangling", "loop", "fifo", "dir")}
