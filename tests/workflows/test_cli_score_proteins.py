"""`genmatch score proteins` end to end on a folder of real backbones: outputs, one failed row for an
unreadable file, resume, refusals, and bad input (exit 2, nothing created)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workflows.cli import main

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling CI

FAST = ["--mpnn-sequences", "2", "--reference-limit", "20", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def pdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from structures.data import load_proteins
    from structures.proteins.io import BackboneChain, write_structure

    d = tmp_path_factory.mktemp("pdbs")
    ds = load_proteins()
    for i in (3, 11, 25):
        c = ds[i]
        write_structure(d / f"{c.name}.pdb", BackboneChain.from_coords(c.coords[:45], c.sequence[:45], name=c.name))
    (d / "zz_broken.pdb").write_text("ATOM      1  N   ALA A   1    garbage\nEND\n")
    return d


def run(pdb_dir: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(["score", "proteins", str(pdb_dir), "--out", str(out), "--cache-dir", str(cache), *FAST, *extra])


def test_score_proteins_end_to_end_and_resume(pdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENMATCH_ESMFOLD", raising=False)
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert run(pdb_dir, out, cache) == 0
    text = capsys.readouterr().out
    assert "designability: unavailable (no ESMFold weights at" in text and "1 failed" in text
    t = pd.read_csv(out / "scores.csv")
    assert len(t) == 4 and (t["status"] == "failed").sum() == 1
    bad = t[t["status"] == "failed"].iloc[0]
    assert bad["id"] == "zz_broken" and bad["problem"].startswith("unreadable")
    ok = t[t["status"] == "scored"]
    assert ok["length"].eq(45).all() and ok["mpnn_log_likelihood"].lt(0).all() and ok["max_tm"].notna().all()
    assert pd.read_parquet(out / "scores.parquet").shape == t.shape
    s = json.loads((out / "summary.json").read_text())
    assert s["n_input"] == 4 and s["n_failed"] == 1 and s["designable_fraction"] is None
    assert s["diversity_over"].startswith("all samples") and s["n_reference"] == 20
    assert {"lengths_rg.png", "secondary_structure.png", "tm.png", "summary.txt"} <= {p.name for p in out.iterdir()}
    # resume: same command, same outputs (from the cache)
    assert run(pdb_dir, out, cache) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "scores.csv"), t)
    # other settings in the same folder are refused, nothing changes
    before = (out / "scores.csv").read_bytes()
    assert run(pdb_dir, out, cache, "--seed", "1") == 2
    assert "--restart" in capsys.readouterr().err and (out / "scores.csv").read_bytes() == before


@pytest.mark.parametrize("case", ["missing", "empty", "all_bad", "esmfold", "reference", "bad_reference", "zero_seqs", "nan"])
def test_bad_input_exit_2_and_nothing_created(case: str, pdb_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    src, extra = str(pdb_dir), []
    if case == "missing":
        src = str(tmp_path / "nope")
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        src = str(tmp_path / "empty")
    elif case == "all_bad":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "x.pdb").write_text("nothing\n")
        src = str(tmp_path / "bad")
    elif case == "esmfold":
        extra = ["--esmfold", str(tmp_path / "no_model")]
    elif case == "reference":
        extra = ["--reference", str(tmp_path / "no_refs")]
    elif case == "bad_reference":
        (tmp_path / "refs").mkdir()
        (tmp_path / "refs" / "r.cif").write_text("data_x\n")
        extra = ["--reference", str(tmp_path / "refs")]
    elif case == "zero_seqs":
        extra = ["--mpnn-sequences", "0"]
    elif case == "nan":
        extra = ["--mpnn-temperature", "nan"]
    out = tmp_path / "out"
    assert main(["score", "proteins", src, "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert not out.exists()
