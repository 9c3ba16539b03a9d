"""The bad-input corpus (issue 11): every verb, every kind of bad input, through the real command line.

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

import fcntl
import json
import os
import pickle
import re
import shutil
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


def _evil(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is unpickled."""

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (open, (str(marker), "w"))

    return pickle.dumps({"state_dict": {"w": Payload()}, "epoch": 0})


def _write_csv(path: Path, cifs: list[str]) -> Path:
    pd.DataFrame({"material_id": [f"m{i}" for i in range(len(cifs))], "cif": cifs}).to_csv(path, index=False)
    return path


@dataclass
class Corpus:
    root: Path
    paths: dict[str, str] = field(default_factory=dict)  # placeholders in the argv of the cases
    stderr: dict[str, str] = field(default_factory=dict)  # what the fixture runs printed

    def __getitem__(self, key: str) -> Path:
        return Path(self.paths[key])


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The inputs of every case, and finished runs (relax, score, generate, train) to point at."""
    import torch
    from pymatgen.core import Lattice, Structure

    from pipeline.common.model_file import Checkpoint, load_checkpoint, save_checkpoint
    from pipeline.crystals.flow import resolve_model_path
    from structures.data import load_crystals

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("corpus")
    c = Corpus(root)
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
    evil = _evil(root / "MARKER")
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
    _write_csv(root / "allbad.csv", ["garbage"] * 10)
    c.paths["allbad_csv"] = str(root / "allbad.csv")
    train_cifs = [s.to(fmt="cif") for s in load_crystals("perov_5", "val", limit=40).structures]
    train_cifs[3], train_cifs[7] = "garbage", train_cifs[7][:150]  # two rows that cannot be used
    _write_csv(root / "half.csv", train_cifs)
    c.paths["half_csv"] = str(root / "half.csv")

    # model files derived from the shipped model
    shipped = load_checkpoint(resolve_model_path("perov_5"))
    state = dict(shipped.state_dict)
    k = next(iter(state))
    wrong = {**state, k: torch.zeros(*(d + 1 for d in state[k].shape))}
    save_checkpoint(root / "wrong_shape.safetensors", Checkpoint(wrong, shipped.record))
    save_checkpoint(root / "other_kind.safetensors", Checkpoint(state, {**shipped.record, "kind": "protein"}))
    save_checkpoint(root / "no_record.safetensors", Checkpoint({"w": torch.ones(2)}, {}))
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

    import contextlib
    import io

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

    ``watch``: the path that must stay unchanged (default: the ``--out`` value). ``text``: part of the
    stderr line. ``prepare(corpus, tmp)`` runs first (and may return a callable that undoes it).
    ``subprocess``: run the installed console script instead of ``main`` in-process."""

    argv: tuple[str, ...]
    text: str
    prepare: Callable[[Corpus, Path], Any] | None = None
    subprocess: bool = False


def C(*argv: str, text: str, prepare: Callable[[Corpus, Path], Any] | None = None, sub: bool = False) -> Case:
    return Case(tuple(argv), text, prepare, sub)


def _hold_lock(run: str) -> Callable[[Corpus, Path], Any]:
    def prepare(c: Corpus, tmp: Path) -> Callable[[], None]:
        f = open(c[run] / ".genmatch.lock", "a+")  # another holder: flock locks belong to the open file
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return f.close

    return prepare


def _copy_of(run: str, then: Callable[[Path, Corpus], None] | None = None) -> Callable[[Corpus, Path], Any]:
    def prepare(c: Corpus, tmp: Path) -> None:
        shutil.copytree(c[run], tmp / "out")
        if then is not None:
            then(tmp / "out", c)

    return prepare


def _evil_resume_state(out: Path, c: Corpus) -> None:
    (out / "lightning" / "last.ckpt").write_bytes(_evil(c["marker"]))


def _stale(verb: str) -> Callable[[Corpus, Path], Any]:
    """``verb crystals`` a copy of the good CIFs into OUT, then give one input new contents under its old name."""

    def prepare(c: Corpus, tmp: Path) -> None:
        src = tmp / "inputs"
        shutil.copytree(c["good"], src)
        rest = RELAX0 if verb == "relax" else ["--reference", str(c["ref"]), *SCORE]
        assert main([verb, "crystals", str(src), *rest, "--out", str(tmp / "out")]) == 0
        (src / "g1.cif").write_text((c["ref"] / "r0.cif").read_text())

    return prepare


def _leftover_start(c: Corpus, tmp: Path) -> None:
    """A failed start: only run.json (another run's), a lock and a temporary file."""
    from pipeline.common.run import RunRecord

    out = tmp / "out"
    out.mkdir()
    (out / "run.json").write_text(RunRecord("relax-crystals", {"fmax": 9.0}, "0" * 32).to_json())
    (out / ".genmatch.lock").write_text("12345")
    (out / ".relax_results.csv.x1y2.tmp").write_text("half a file")


E = "{OUT}"
ERRORS: dict[str, Case] = {
    # ---- options: non-finite and out of range, refused at parse time
    "gen-temperature-inf": C("generate", "crystals", *GEN, "--temperature", "inf", "--out", E, text="--temperature"),
    "gen-temperature-nan": C("generate", "crystals", *GEN, "--temperature", "nan", "--out", E, text="--temperature",
                             sub=True),
    "gen-temperature-0": C("generate", "crystals", *GEN, "--temperature", "0", "--out", E, text="--temperature"),
    "gen-corrector-nan": C("generate", "crystals", *GEN, "--corrector", "nan", "--out", E, text="--corrector"),
    "gen-corrector-neg": C("generate", "crystals", *GEN, "--corrector", "-1", "--out", E, text="--corrector"),
    "gen-n-0": C("generate", "crystals", "-n", "0", "--out", E, text="-n"),
    "gen-steps-0": C("generate", "crystals", "--steps", "0", "--out", E, text="--steps"),
    "gen-batch-neg": C("generate", "crystals", "--batch-size", "-1", "--out", E, text="--batch-size"),
    "gen-num-atoms-0": C("generate", "crystals", *GEN, "--num-atoms", "0", "--out", E, text="--num-atoms"),
    "gen-num-atoms-too-many": C("generate", "crystals", *GEN, "--num-atoms", "500", "--out", E,
                                text="atom counts must be in 1.."),
    "gen-num-atoms-count": C("generate", "crystals", *GEN, "--num-atoms", "5,5,5", "--out", E, text="3 atom counts"),
    "gen-scheduler": C("generate", "crystals", *GEN, "--scheduler", "quartic", "--out", E, text="--scheduler"),
    "relax-fmax-nan": C("relax", "crystals", "{good}", *RELAX0, "--fmax", "nan", "--out", E, text="--fmax"),
    "relax-fmax-inf": C("relax", "crystals", "{good}", *RELAX0, "--fmax", "inf", "--out", E, text="--fmax"),
    "relax-fmax-0": C("relax", "crystals", "{good}", *RELAX0, "--fmax", "0", "--out", E, text="--fmax"),
    "relax-max-steps-neg": C("relax", "crystals", "{good}", "--max-steps", "-1", "--out", E, text="--max-steps"),
    "relax-batch-0": C("relax", "crystals", "{good}", *RELAX0, "--batch-size", "0", "--out", E, text="--batch-size"),
    "relax-limit-0": C("relax", "crystals", "{good}", *RELAX0, "--limit", "0", "--out", E, text="--limit"),
    "relax-chgnet": C("relax", "crystals", "{good}", *RELAX0, "--chgnet", "9.9", "--out", E, text="--chgnet"),
    "relax-threads-0": C("relax", "crystals", "{good}", "--threads", "0", "--out", E, text="--threads"),
    "score-threshold-nan": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--e-hull-threshold",
                             "nan", "--out", E, text="--e-hull-threshold"),
    "score-threshold-inf": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--e-hull-threshold",
                             "inf", "--out", E, text="--e-hull-threshold"),
    "score-n-samples-0": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--n-samples", "0",
                           "--out", E, text="--n-samples"),
    "score-struc-cutoff-neg": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--struc-cutoff",
                                "-1", "--out", E, text="--struc-cutoff"),
    "score-comp-cutoff-nan": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--comp-cutoff",
                               "nan", "--out", E, text="--comp-cutoff"),
    "score-workers-0": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--workers", "0",
                         "--out", E, text="--workers"),
    "score-no-dataset": C("score", "crystals", "{good}", "--reference", "{ref}", "--out", E, text="--dataset"),
    "train-lr-inf": C("train", "crystals", *TRAIN, "--lr", "inf", "--out", E, text="--lr"),
    "train-lr-0": C("train", "crystals", *TRAIN, "--lr", "0", "--out", E, text="--lr"),
    "train-grad-clip-nan": C("train", "crystals", *TRAIN, "--grad-clip", "nan", "--out", E, text="--grad-clip"),
    "train-ema-1": C("train", "crystals", *TRAIN, "--ema-decay", "1", "--out", E, text="--ema-decay"),
    "train-val-fraction-0": C("train", "crystals", *TRAIN, "--val-fraction", "0", "--out", E, text="--val-fraction"),
    "train-max-steps-0": C("train", "crystals", "--max-steps", "0", "--out", E, text="--max-steps"),
    "train-dropout-1": C("train", "crystals", *TRAIN, "--dropout", "1", "--out", E, text="--dropout"),
    "train-network": C("train", "crystals", "--network", "huge", "--out", E, text="--network"),
    "train-heads": C("train", "crystals", *TRAIN, "--hidden", "48", "--heads", "5", "--out", E, text="--heads"),
    "train-hidden-0": C("train", "crystals", *TRAIN, "--hidden", "0", "--out", E, text="--hidden"),
    "train-coord-beta-0": C("train", "crystals", *TRAIN, "--coord-beta", "0", "1", "--out", E, text="--coord-beta"),
    "train-coord-path": C("train", "crystals", *TRAIN, "--coord-path", "gauss", "--out", E, text="--coord-path"),
    "train-metric-elbo": C("train", "crystals", *TRAIN, "--coord-path", "metric", "--loss", "elbo", "--out", E,
                           text="cross-entropy"),
    "demo-n-generate-0": C("demo", "--n-generate", "0", "--out", E, text="--n-generate"),
    "demo-steps-nan": C("demo", "--steps", "nan", "--out", E, text="--steps"),
    "demo-max-relax-steps-neg": C("demo", "--max-relax-steps", "-1", "--out", E, text="--max-relax-steps"),
    "demo-threads-0": C("demo", "--threads", "0", "--out", E, text="--threads"),
    "demo-hull": C("demo", "--hull", "bogus", "--out", E, text="--hull"),
    "info-bad-option": C("info", "--bogus", text="--bogus"),
    "no-target": C("relax", text="crystals"),
    "protein-checkpoint-missing": C("generate", "proteins", "--lengths", "50", "--checkpoint", "{root}/nope.ckpt",
                                    "--out", E, text="checkpoint not found"),
    # ---- missing or unreadable inputs
    "relax-missing-input": C("relax", "crystals", "{root}/no/such/dir", *RELAX0, "--out", E, text="input not found",
                             sub=True),
    "relax-empty-folder": C("relax", "crystals", "{empty}", *RELAX0, "--out", E, text="no .cif files"),
    "relax-folder-without-cifs": C("relax", "crystals", "{nocifs}", *RELAX0, "--out", E, text="no .cif files"),
    "relax-unsupported-file": C("relax", "crystals", "{nocifs}/s.xyz", *RELAX0, "--out", E, text="unsupported input"),
    "relax-needs-split": C("relax", "crystals", "perov_5", *RELAX0, "--out", E, text="needs a split"),
    "relax-duplicate-ids": C("relax", "crystals", "{dup_ids}", *RELAX0, "--out", E, text="unique"),
    "relax-csv-without-cif": C("relax", "crystals", "{nocif_csv}", *RELAX0, "--out", E, text="nocif.csv"),
    "relax-csv-all-rows-bad": C("relax", "crystals", "{allbad_csv}", *RELAX0, "--out", E, text="none of the 10"),
    "score-missing-input": C("score", "crystals", "{root}/nope", "--reference", "{ref}", *SCORE, "--out", E,
                             text="input not found"),
    "score-missing-reference": C("score", "crystals", "{good}", "--reference", "{root}/nope", *SCORE, "--out", E,
                                 text="input not found"),
    "score-reference-no-cifs": C("score", "crystals", "{good}", "--reference", "{nocifs}", *SCORE, "--out", E,
                                 text="no .cif files"),
    "score-reference-unusable": C("score", "crystals", "{good}", "--reference", "{bad_ref}", *SCORE, "--out", E,
                                  text="no usable reference structure"),
    "score-input-unusable": C("score", "crystals", "{bad_ref}", "--reference", "{ref}", *SCORE, "--out", E,
                              text="none of the 1 structures can be scored"),
    "score-training-missing": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--training",
                                "{root}/nope.csv", "--out", E, text="input not found"),
    "score-energies-missing": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--energies",
                                "{root}/nope.csv", "--out", E, text="energies file not found"),
    "score-energies-columns": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--energies",
                                "{energies_nocol_csv}", "--out", E, text="needs columns"),
    "score-energies-ids": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--energies",
                            "{energies_noid_csv}", "--out", E, text="no energy for 3 structures"),
    "score-energies-not-numbers": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--energies",
                                    "{energies_text_csv}", "--out", E, text="not numbers"),
    "score-hull-extension": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                              "{hull_xyz}", "--out", E, text="unknown hull"),
    "score-hull-pickle-untrusted": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                                     "{hull_pkl}", "--out", E, text="--trust-pickle", sub=True),
    "score-hull-missing": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--hull",
                            "{root}/nope.json", "--out", E, text="hull file not found"),
    "train-dataset-missing": C("train", "crystals", *TRAIN, "--dataset", "{root}/missing.csv", "--out", E,
                               text="not found"),
    "train-dataset-no-cif-column": C("train", "crystals", *TRAIN, "--dataset", "{nocif_csv}", "--out", E,
                                     text="'cif' column"),
    "train-dataset-binary": C("train", "crystals", *TRAIN, "--dataset", "{binary_csv}", "--out", E,
                              text="cannot read the training data"),
    "train-dataset-no-usable-rows": C("train", "crystals", *TRAIN, "--dataset", "{allbad_csv}", "--out", E,
                                      text="0 usable crystals of 10 rows"),
    "train-split-missing": C("train", "crystals", *TRAIN, "--split", "nosuch", "--out", E, text="no split 'nosuch'"),
    "relax-split-missing": C("relax", "crystals", "perov_5:nosuch", *RELAX0, "--out", E, text="no split 'nosuch'"),
    "score-reference-split-missing": C("score", "crystals", "{good}", "--reference", "perov_5:nosuch", *SCORE,
                                       "--out", E, text="no split 'nosuch'"),
    # ---- model and resume files: missing, malformed, wrong shape, malicious
    "gen-model-missing": C("generate", "crystals", *GEN, "--model", "{root}/none.safetensors", "--out", E,
                           text="neither a checkpoint"),
    "gen-model-pickle-safetensors": C("generate", "crystals", *GEN, "--model", "{evil_safetensors}", "--out", E,
                                      text="not a genmatch safetensors checkpoint", sub=True),
    "gen-model-pickle-pt": C("generate", "crystals", *GEN, "--model", "{evil_pt}", "--out", E,
                             text="not a genmatch safetensors checkpoint"),
    "gen-model-truncated": C("generate", "crystals", *GEN, "--model", "{truncated_safetensors}", "--out", E,
                             text="not a genmatch safetensors checkpoint"),
    "gen-model-bad-header": C("generate", "crystals", *GEN, "--model", "{header_only_safetensors}", "--out", E,
                              text="not a genmatch safetensors checkpoint"),
    "gen-model-wrong-shape": C("generate", "crystals", *GEN, "--model", "{wrong_shape_safetensors}", "--out", E,
                               text="weights do not match the network"),
    "gen-model-other-kind": C("generate", "crystals", *GEN, "--model", "{other_kind_safetensors}", "--out", E,
                              text="not a genmatch crystal generator"),
    "gen-model-no-record": C("generate", "crystals", *GEN, "--model", "{no_record_safetensors}", "--out", E,
                             text="not a genmatch crystal generator"),
    "train-resume-malicious-pickle": C("train", "crystals", "--dataset", "{half_csv}", *TRAIN, "--out", E,
                                       text="resume state cannot be read safely",
                                       prepare=_copy_of("train_run", _evil_resume_state)),
    # ---- output folders: a file, under a file, foreign, another run, stale inputs, locked
    "relax-out-is-file": C("relax", "crystals", "{good}", *RELAX0, "--out", "{afile}", text="is a file"),
    "relax-out-under-file": C("relax", "crystals", "{good}", *RELAX0, "--out", "{under_file}",
                              text="cannot create the output folder"),
    "gen-out-is-file": C("generate", "crystals", "--model", "perov_5", *GEN, "--out", "{afile}", text="is a file"),
    "score-out-under-file": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--out",
                              "{under_file}", text="cannot create"),
    "train-out-under-file": C("train", "crystals", "--dataset", "{half_csv}", *TRAIN, "--out", "{under_file}",
                              text="cannot create"),
    "demo-out-is-file": C("demo", "--reference-limit", "2", "--quiet", "--out", "{afile}", text="is a file"),
    "relax-out-foreign": C("relax", "crystals", "{good}", *RELAX0, "--out", "{foreign}", text="holds no genmatch run"),
    "relax-out-foreign-restart": C("relax", "crystals", "{good}", *RELAX0, "--restart", "--out", "{foreign}",
                                   text="never deletes files it did not write"),
    "demo-out-foreign": C("demo", "--reference-limit", "2", "--quiet", "--out", "{foreign}",
                          text="holds no genmatch run"),
    "relax-into-relax-run-other-inputs": C("relax", "crystals", "{ref}", *RELAX0, "--out", "{relax_run}",
                                           text="holds a relax-crystals run with other inputs"),
    "relax-into-relax-run-other-settings": C("relax", "crystals", "{good}", *RELAX0, "--fmax", "0.2", "--out",
                                             "{relax_run}", text="other fmax"),
    "relax-into-score-run": C("relax", "crystals", "{good}", *RELAX0, "--out", "{score_run}",
                              text="holds a score-crystals run"),
    "score-into-score-run-other-inputs": C("score", "crystals", "{ref}", "--reference", "{good}", *SCORE, "--out",
                                           "{score_run}", text="holds a score-crystals run with other inputs"),
    "score-into-relax-run": C("score", "crystals", "{good}", "--reference", "{ref}", *SCORE, "--out",
                              "{relax_run}", text="holds a relax-crystals run"),
    "gen-into-gen-run-other-seed": C("generate", "crystals", "--model", "perov_5", *GEN, "--seed", "1", "--out",
                                     "{gen_run}", text="other seed"),
    "gen-into-relax-run": C("generate", "crystals", "--model", "perov_5", *GEN, "--out", "{relax_run}",
                            text="holds a relax-crystals run"),
    "train-into-gen-run": C("train", "crystals", "--dataset", "{half_csv}", *TRAIN, "--out", "{gen_run}",
                            text="holds a generate-crystals run"),
    "relax-stale-inputs": C("relax", "crystals", "{tmp}/inputs", *RELAX0, "--out", E, text="other inputs",
                            prepare=_stale("relax")),
    "score-stale-inputs": C("score", "crystals", "{tmp}/inputs", "--reference", "{ref}", *SCORE, "--out", E,
                            text="other inputs", prepare=_stale("score")),
    "relax-locked-run": C("relax", "crystals", "{good}", *RELAX0, "--out", "{relax_run}",
                          text="another genmatch process", prepare=_hold_lock("relax_run")),
    "gen-locked-run": C("generate", "crystals", "--model", "perov_5", *GEN, "--out", "{gen_run}",
                        text="another genmatch process", prepare=_hold_lock("gen_run")),
}


def _argv(case: Case, c: Corpus, tmp: Path) -> tuple[list[str], Path | None]:
    paths = {**c.paths, "root": str(c.root), "tmp": str(tmp), "OUT": str(tmp / "out")}
    argv = [a.format(**paths) for a in case.argv]
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
    return argv, out


def _run(case: Case, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    if not case.subprocess:
        return _cli(argv, capsys)
    exe = Path(sys.executable).with_name("genmatch")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "workflows.cli"]
    r = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=120, errors="replace")
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_exits_2_and_changes_nothing(name: str, corpus: Corpus, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    case = ERRORS[name]
    undo = case.prepare(corpus, tmp_path) if case.prepare else None
    argv, out = _argv(case, corpus, tmp_path)
    capsys.readouterr()
    watched = {p: snapshot(p) for p in ([out] if out else []) + [corpus.root / "good", corpus.root / "ref"]}
    try:
        rc, stdout, err = _run(case, argv, capsys)
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


def test_corpus_size() -> None:
    assert len(ERRORS) + len(ROWS) >= 40


# ---------------------------------------------------------------- per-item problems: a row, the batch goes on

ROWS = {  # folder -> (id of the bad item, what its reason says)
    "mix_garbage": ("bad_garbage", "bad input: no _cell_length_a"),
    "mix_negative": ("bad_negative", "bad input: cell length a = -"),
    "mix_nan_length": ("bad_nan_length", "bad input: cell length b = nan"),
    "mix_cut_mid_line": ("bad_cut_mid_line", "bad input: not a CIF that pymatgen can read"),
    "mix_cut_lines": ("bad_cut_lines", "bad input: the CIF states '"),
    "mix_z95": ("bad_z95", "bad input: element Am (Z = 95) is beyond what the model covers (Z <= 94)"),
    "mix_not_utf8_text": ("bad_not_utf8_text", "bad input: not a UTF-8 text file"),
    "mix_empty_file": ("bad_empty_file", "bad input: no _cell_length_a"),
    "mix_non_utf8_name": ("caf\\xe9", "bad input: the file name is not valid UTF-8"),
}


@pytest.mark.parametrize("folder", list(ROWS))
def test_relax_records_a_bad_item_as_a_failed_row(folder: str, corpus: Corpus, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = _cli(["relax", "crystals", str(corpus[folder]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and "Traceback" not in err and not err.strip(), err
    assert "relaxed 2 structures" in stdout and "1 unusable inputs" in stdout
    t = pd.read_csv(out / "relax_results.csv", keep_default_na=False)
    bad_id, reason = ROWS[folder]
    rows = dict(zip(t["id"], zip(t["status"], t["reason"])))
    assert set(rows) == {"g0", bad_id}, rows
    assert rows[bad_id][0] == "failed" and rows[bad_id][1].startswith(reason), rows[bad_id]
    assert rows["g0"][0] != "failed"  # the batch went on
    assert [p.name for p in (out / "relaxed").iterdir()] == ["g0.cif"]  # no CIF for the bad item
    summary = json.loads((out / "relax_summary.json").read_text())
    assert summary["n_bad_input"] == 1 and summary["failed"] == 1
    assert not list(out.rglob(".*.tmp"))


@pytest.mark.parametrize("folder", ["mix_garbage", "mix_cut_lines", "mix_non_utf8_name"])
def test_score_records_a_bad_item_as_an_unusable_row(folder: str, corpus: Corpus, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = _cli(["score", "crystals", str(corpus[folder]), "--reference", str(corpus["ref"]), *SCORE,
                            "--out", str(out)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    line = json.loads(stdout.strip().splitlines()[-1])
    assert line["n_input"] == 2 and line["n_unusable"] == 1
    t = pd.read_csv(out / "scores.csv", keep_default_na=False)
    bad_id = ROWS[folder][0]
    assert dict(zip(t["id"], t["usable"].astype(str))) == {"g0": "True", bad_id: "False"}
    assert t.loc[t["id"] == bad_id, "problem"].item() != ""
    assert json.loads((out / "summary.json").read_text())["n_unusable"] == 1


def test_score_gives_no_e_hull_to_a_structurally_invalid_crystal(corpus: Corpus, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = _cli(["score", "crystals", str(corpus["mix_overlap"]), "--reference", str(corpus["ref"]),
                            *SCORE, "--hull", "mp-elements", "--out", str(out)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    t = pd.read_csv(out / "scores.csv").set_index("id")
    assert not t.loc["overlap", "struct_valid"] and t.loc["g0", "struct_valid"]
    assert pd.isna(t.loc["overlap", "e_hull"]) and not t.loc["overlap", "stable"]
    assert pd.notna(t.loc["g0", "e_hull"])


def test_training_reports_skipped_rows_in_one_warning(corpus: Corpus) -> None:
    err = corpus.stderr["train_run"]
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "warning: skipped 2 of 40 rows of half.csv" in err


def test_a_failed_start_is_taken_over(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _leftover_start(corpus, tmp_path)
    out = tmp_path / "out"
    rc, stdout, err = _cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    assert json.loads((out / "run.json").read_text())["settings"]["max_steps"] == 0
    assert len(pd.read_csv(out / "relax_results.csv")) == 3
    assert not list(out.rglob(".*.tmp"))


def test_the_same_command_resumes_a_finished_run_unchanged(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    """The counterpart of the refusals: the same inputs and settings into a finished run change no result."""
    out = corpus["relax_run"]
    before = {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"}
    rc, _, err = _cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    assert {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"} == before


def test_demo_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENMATCH_DATA", str(tmp_path))
    rc, _, err = _cli(["demo", "--quiet", "--out", str(tmp_path / "demo")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not found" in err
    assert not (tmp_path / "demo").exists()


def test_the_malicious_payload_is_live(tmp_path: Path) -> None:
    """The corpus' pickles really would run code if unpickled: the marker checks above are not vacuous."""
    marker = tmp_path / "marker"
    pickle.loads(_evil(marker))
    assert marker.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; see relax-out-under-file")
def test_read_only_parent_exits_2(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        rc, _, err = _cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(parent / "out")], capsys)
    finally:
        parent.chmod(0o700)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "cannot create the output folder" in err
    assert not (parent / "out").exists()


def test_non_utf8_folder_names_work(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Input and output folders whose names are not valid UTF-8 are legal on Linux: relax, then score with
    the relax_results.parquet energies (pyarrow cannot open such paths itself; we hand it bytes)."""
    src = tmp_path / f"in_{NON_UTF8}"
    shutil.copytree(corpus["good"], src)
    relaxed = tmp_path / f"relax_{NON_UTF8}"
    rc, _, err = _cli(["relax", "crystals", str(src), *RELAX0, "--out", str(relaxed)], capsys)
    assert rc == 0 and not err.strip(), err
    assert len(pd.read_csv(relaxed / "relax_results.csv")) == 3 and (relaxed / "relax_results.parquet").is_file()
    scored = tmp_path / f"score_{NON_UTF8}"
    rc, _, err = _cli(["score", "crystals", str(relaxed / "relaxed"), "--reference", str(corpus["ref"]), *SCORE,
                       "--energies", str(relaxed / "relax_results.parquet"), "--hull", "mp-elements",
                       "--out", str(scored)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    assert json.loads((scored / "summary.json").read_text())["energy_source"] == "given"


def test_a_non_utf8_path_in_an_error_is_printable(corpus: Corpus, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The one stderr line survives a path that is not valid UTF-8 (no UnicodeEncodeError, no traceback)."""
    out = tmp_path / f"out_{NON_UTF8}"
    out.write_text("a file")
    rc, _, err = _cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "out_caf\\udce9: the output path is a file" in err


def test_a_bad_csv_row_is_one_failed_row(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CDVAE CSV follows the same rule as a CIF folder: one unusable row is one failed row."""
    from structures.data import load_crystals

    good = load_crystals("perov_5", "test", limit=1).structures[0].to(fmt="cif")
    csv = _write_csv(tmp_path / "mixed.csv", [good, "garbage", good.replace("_cell_length_a", "_cell_length_a -")])
    out = tmp_path / "out"
    rc, stdout, err = _cli(["relax", "crystals", str(csv), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    t = pd.read_csv(out / "relax_results.csv", keep_default_na=False)
    assert list(t["status"] == "failed") == [False, True, True]
    assert all(r.startswith("bad input: ") for r in t["reason"][1:])
