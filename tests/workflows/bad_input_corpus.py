"""The bad-input corpus (issue 11), shared by ``test_bad_input_crystals.py`` and ``test_bad_input_proteins.py``.

Each case runs ``genmatch ...`` (in-process through :func:`workflows.cli.main`, a few as a subprocess of
the installed console script) and checks the contract:

* bad input -> exit code 2, exactly one line on stderr, no traceback, and the output folder is not
  created, or, when it existed (a finished run, a file, a foreign folder), is byte for byte unchanged
  (every file name and content under it, the lock file included);
* a bad item inside a batch (an unreadable, truncated or non-physical CIF, Z > 94, a non-UTF-8 file
  name) -> exit 0 with that item as a failed (relax) or unusable (score) row, the others done.

Malicious pickles carry a ``__reduce__`` payload that would create a marker file: it must never exist.
Sizes are tiny (``--max-steps 0`` for relax, a few CIFs, 2 sampler steps), so the whole corpus is fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from workflows.cli import main

NON_UTF8 = os.fsdecode(b"caf\xe9")  # a file name that is not valid UTF-8 (Latin-1 e-acute)
QUIET = ["--quiet"]
RELAX0 = ["--max-steps", "0", "--quiet", "--threads", "1"]
SCORE = ["--dataset", "perov_5", "--no-cache", "--no-plots", "--n-samples", "2", "--quiet", "--threads", "1"]
GEN = ["-n", "2", "--steps", "2", "--quiet", "--threads", "1"]
TRAIN = ["--batch-size", "8", "--max-steps", "1", "--val-every", "1", "--val-fraction", "0.25",
         "--warmup-steps", "0", "--quiet", "--threads", "1"]


# ------------------------------------------------------------------------------------------ helpers

def snapshot(path: Path) -> dict[str, bytes | None] | None:
    """Every name under ``path`` with its bytes (None for a folder); None when ``path`` does not exist."""
    if not os.path.lexists(path):
        return None
    if path.is_file():
        return {".": path.read_bytes()}
    return {p.relative_to(path).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def closed_scheduler() -> str:
    """A dask scheduler address on a local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def evil_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is unpickled."""

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (open, (str(marker), "w"))

    return pickle.dumps({"state_dict": {"w": Payload()}, "epoch": 0})


def write_csv(path: Path, cifs: list[str]) -> Path:
    pd.DataFrame({"material_id": [f"m{i}" for i in range(len(cifs))], "cif": cifs}).to_csv(path, index=False)
    return path


@dataclass
class Corpus:
    root: Path
    paths: dict[str, str] = field(default_factory=dict)  # placeholders in the argv of the cases
    stderr: dict[str, str] = field(default_factory=dict)  # what the fixture runs printed
    inputs: tuple[str, ...] = ()  # input folders (keys of ``paths``) that no refusal may change

    def __getitem__(self, key: str) -> Path:
        return Path(self.paths[key])


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def crystal_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The inputs of every crystal case, and finished runs (relax, score, generate, train) to point at."""
    import torch
    from pymatgen.core import Lattice, Structure

    from pipeline.common.model_file import ModelFile, load_model_file, save_model_file
    from pipeline.crystals.flow import resolve_model_path
    from structures.data import load_crystals

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("corpus")
    c = Corpus(root, inputs=("good", "ref"))
    ds = load_crystals("perov_5", "test", limit=8)
    cifs = [s.to(fmt="cif") for s in ds.structures]

    def folder(name: str, files: dict[str, str | bytes]) -> Path:
        d = root / name
        d.mkdir()
        for fname, content in files.items():
            p = d / fname
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
        c.paths[name] = str(d)
        return d

    folder("good", {f"g{i}.cif": cifs[i] for i in range(3)})
    folder("ref", {f"r{i}.cif": cifs[3 + i] for i in range(4)})
    folder("empty", {})
    folder("nocifs", {"notes.txt": "no crystals here\n", "s.xyz": "1\n\nH 0 0 0\n"})
    folder("foreign", {"notes.txt": "a folder genmatch did not write\n"})
    folder("dup_ids", {"a.cif": cifs[0], "a.CIF": cifs[1]})
    folder("bad_ref", {"x.cif": "not a CIF at all\n"})

    # one good CIF plus one bad item per folder: the batch must go on
    negative = re.sub(r"(_cell_length_a\s+)(\S+)", r"\1-\2", cifs[1])
    nan_len = re.sub(r"(_cell_length_b\s+)(\S+)", r"\1nan", cifs[1])
    lines = cifs[1].rstrip("\n").splitlines()
    cut_mid_line = "\n".join(lines[:-2]) + "\n" + lines[-2][:12]  # the last atoms lost mid-line
    cut_lines = "\n".join(lines[:-2]) + "\n"  # whole atom lines lost: it still parses, with fewer sites
    am = Structure(Lattice.cubic(3.5), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")  # Z = 95
    overlap = Structure(Lattice.cubic(4.4), ["Ca", "Ti", "O", "O", "O"],
                        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.5, 0.0, 0.56]])
    bad_items = {"garbage": "this is not a CIF\n", "negative": negative, "nan_length": nan_len,
                 "cut_mid_line": cut_mid_line, "cut_lines": cut_lines, "z95": am, "not_utf8_text": b"data_x\n_cell_length_a \xff\xfe\n",
                 "empty_file": ""}
    for name, content in bad_items.items():
        folder(f"mix_{name}", {"g0.cif": cifs[0], f"bad_{name}.cif": content})
    d = folder("mix_non_utf8_name", {"g0.cif": cifs[0]})
    (d / f"{NON_UTF8}.cif").write_text(cifs[2])
    folder("mix_overlap", {"g0.cif": cifs[0], "overlap.cif": overlap.to(fmt="cif")})

    # files
    (root / "afile").write_text("a regular file where a folder is expected\n")
    c.paths["afile"] = str(root / "afile")
    c.paths["under_file"] = str(root / "afile" / "sub")
    c.paths["marker"] = str(root / "MARKER")
    evil = evil_pickle(root / "MARKER")
    for name in ("evil.safetensors", "evil.pt", "evil.ckpt"):
        (root / name).write_bytes(evil)
        c.paths[name.replace(".", "_")] = str(root / name)
    (root / "hull.pkl").write_bytes(evil)
    (root / "hull.xyz").write_text("not a hull\n")
    (root / "nocif.csv").write_text("a,b\n1,2\n")
    (root / "binary.csv").write_bytes(b"\x00\xff\xfe\x00garbage\x80\x81")
    (root / "energies_nocol.csv").write_text("id,foo\ng0,1\n")
    (root / "energies_noid.csv").write_text("id,e_final_per_atom\nzzz,-3.0\n")
    (root / "energies_text.csv").write_text("id,e_final_per_atom\ng0,x\ng1,y\ng2,z\n")
    for name in ("hull.pkl", "hull.xyz", "nocif.csv", "binary.csv", "energies_nocol.csv", "energies_noid.csv",
                 "energies_text.csv"):
        c.paths[name.replace(".", "_")] = str(root / name)
    write_csv(root / "allbad.csv", ["garbage"] * 10)
    c.paths["allbad_csv"] = str(root / "allbad.csv")
    train_cifs = [s.to(fmt="cif") for s in load_crystals("perov_5", "val", limit=40).structures]
    train_cifs[3], train_cifs[7] = "garbage", train_cifs[7][:150]  # two rows that cannot be used
    write_csv(root / "half.csv", train_cifs)
    c.paths["half_csv"] = str(root / "half.csv")

    # model files derived from the shipped model
    shipped = load_model_file(resolve_model_path("perov_5"))
    state = dict(shipped.state_dict)
    k = next(iter(state))
    wrong = {**state, k: torch.zeros(*(d + 1 for d in state[k].shape))}
    save_model_file(root / "wrong_shape.safetensors", ModelFile(wrong, shipped.record))
    save_model_file(root / "other_kind.safetensors", ModelFile(state, {**shipped.record, "kind": "protein"}))
    save_model_file(root / "no_record.safetensors", ModelFile({"w": torch.ones(2)}, {}))
    blob = (root / "wrong_shape.safetensors").read_bytes()
    (root / "truncated.safetensors").write_bytes(blob[: len(blob) // 3])
    (root / "header_only.safetensors").write_bytes((10**6).to_bytes(8, "little") + b'{"x": 1')
    for name in ("wrong_shape", "other_kind", "no_record", "truncated", "header_only"):
        c.paths[f"{name}_safetensors"] = str(root / f"{name}.safetensors")

    # finished runs of *other* inputs to point at; each case checks that it stays byte for byte the same
    def finished(name: str, argv: list[str]) -> None:
        out = root / name
        c.paths[name] = str(out)
        rc = main([a.format(**c.paths) for a in argv] + ["--out", str(out)])
        assert rc == 0, (name, argv)


    finished("relax_run", ["relax", "crystals", "{good}", *RELAX0])
    finished("score_run", ["score", "crystals", "{good}", "--reference", "{ref}", *SCORE])
    finished("gen_run", ["generate", "crystals", "--model", "perov_5", *GEN])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        finished("train_run", ["train", "crystals", "--dataset", "{half_csv}", *TRAIN])
    c.stderr["train_run"] = err.getvalue()
    return c


# --------------------------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    """``argv`` with ``{placeholders}`` (corpus paths; ``{OUT}``: a fresh folder, ``{<run>}``: a finished run).

    The ``--out`` value and the corpus' ``inputs`` must stay unchanged. ``text``: part of the stderr line.
    ``prepare(corpus, tmp)`` runs first (and may return a callable that undoes it).
    ``subprocess``: run the installed console script instead of ``main`` in-process."""

    argv: tuple[str, ...]
    text: str
    prepare: Callable[[Corpus, Path], Any] | None = None
    subprocess: bool = False


def C(*argv: str, text: str, prepare: Callable[[Corpus, Path], Any] | None = None, sub: bool = False) -> Case:
    return Case(tuple(argv), text, prepare, sub)


def hold_lock(run: str) -> Callable[[Corpus, Path], Any]:
    def prepare(c: Corpus, tmp: Path) -> Callable[[], None]:
        f = open(c[run] / ".genmatch.lock", "a+")  # another holder: flock locks belong to the open file
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f.close

    return prepare


def copy_of(run: str, then: Callable[[Path, Corpus], None] | None = None) -> Callable[[Corpus, Path], Any]:
    def prepare(c: Corpus, tmp: Path) -> None:
        shutil.copytree(c[run], tmp / "out")
        if then is not None:
            then(tmp / "out", c)

    return prepare


def evil_resume_state(out: Path, c: Corpus) -> None:
    (out / "lightning" / "last.ckpt").write_bytes(evil_pickle(c["marker"]))


def stale(verb: str) -> Callable[[Corpus, Path], Any]:
    """``verb crystals`` a copy of the good CIFs into OUT, then give one input new contents under its old name."""

    def prepare(c: Corpus, tmp: Path) -> None:
        src = tmp / "inputs"
        shutil.copytree(c["good"], src)
        rest = RELAX0 if verb == "relax" else ["--reference", str(c["ref"]), *SCORE]
        assert main([verb, "crystals", str(src), *rest, "--out", str(tmp / "out")]) == 0
        (src / "g1.cif").write_text((c["ref"] / "r0.cif").read_text())

    return prepare


def leftover_start(c: Corpus, tmp: Path) -> None:
    """A failed start: only run.json (another run's), a lock and a temporary file."""
    from pipeline.common.run import RunRecord

    out = tmp / "out"
    out.mkdir()
    (out / "run.json").write_text(RunRecord("relax-crystals", {"fmax": 9.0}, "0" * 32).to_json())
    (out / ".genmatch.lock").write_text("12345")
    (out / ".relax_results.csv.x1y2.tmp").write_text("half a file")


def case_argv(case: Case, c: Corpus, tmp: Path) -> tuple[list[str], Path | None]:
    paths = {**c.paths, "root": str(c.root), "tmp": str(tmp), "OUT": str(tmp / "out")}
    argv = [a.format(**paths) for a in case.argv]
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    return argv, out


def run_case(case: Case, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    if not case.subprocess:
        return cli(argv, capsys)
    exe = Path(sys.executable).with_name("genmatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "workflows.cli"]
    r = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=120, errors="replace")
    return r.returncode, r.stdout, r.stderr


def check_refusal(case: Case, corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run ``case`` and check the contract: exit 2, one stderr line holding ``case.text``, no traceback, the
    output folder and the corpus' input folders byte for byte unchanged, no malicious pickle executed."""
    undo = case.prepare(corpus, tmp_path) if case.prepare else None
    argv, out = case_argv(case, corpus, tmp_path)
    capsys.readouterr()
    watched = {p: snapshot(p) for p in ([out] if out else []) + [corpus[k] for k in corpus.inputs]}
    try:
        rc, stdout, err = run_case(case, argv, capsys)
    finally:
        if callable(undo):
            undo()
    assert rc == 2, (rc, err)
    assert len(err.strip().splitlines()) == 1, err
    assert case.text in err, err
    assert "Traceback" not in err and "internal error" not in err
    for p, before in watched.items():
        assert snapshot(p) == before, f"{p} changed"
    assert not Path(corpus.paths["marker"]).exists(), "a malicious pickle was executed"
