"""`genmatch relax crystals` and `genmatch score crystals` on real structures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workflows.cli import main

pytestmark = pytest.mark.timeout(600)  # a hang fails (with its stack) instead of stalling CI


@pytest.fixture(scope="module")
def cif_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from structures.data import load_crystals

    d = tmp_path_factory.mktemp("cifs")
    ds = load_crystals("perov_5", "test", limit=3)
    for mid, s in zip(ds.properties["material_id"], ds.structures):
        (d / f"{mid}.cif").write_text(s.to(fmt="cif"))
    return d


def test_relax_crystals_writes_outputs_and_resumes(cif_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "relax"
    assert main(["relax", "crystals", str(cif_dir), "--out", str(out), "--max-steps", "3",
                 "--threads", "1", "--quiet"]) == 0
    assert "relaxed 3 structures" in capsys.readouterr().out
    t = pd.read_csv(out / "relax_results.csv")
    assert len(t) == 3 and set(t["status"]) <= {"converged", "step_limit"}
    assert (t["n_steps"] <= 3).all() and t["e_final_per_atom"].notna().all()
    assert pd.read_parquet(out / "relax_results.parquet").shape == t.shape
    assert len(list((out / "relaxed").glob("*.cif"))) == 3
    summary = json.loads((out / "relax_summary.json").read_text())
    assert summary["n"] == 3 and summary["settings"]["fmax"] == 0.1
    # resume: everything is in the checkpoint, nothing is relaxed again, same table
    assert main(["relax", "crystals", str(cif_dir), "--out", str(out), "--max-steps", "3", "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "relax_results.csv"), t)
    # the relaxed CIFs + energies feed the scorer
    sout = tmp_path / "score"
    assert main(["score", "crystals", str(out / "relaxed"), "--reference", "perov_5:test", "--reference-limit", "20",
                 "--out", str(sout), "--energies", str(out / "relax_results.csv"), "--hull", "mp-elements",
                 "--no-cache", "--quiet", "--n-samples", "3"]) == 0
    s = json.loads((sout / "summary.json").read_text())
    assert s["energy_source"] == "given" and s["n_structures"] == 3 and "stable_rate" in s


def test_score_crystals_named_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "score"
    assert main(["score", "crystals", "perov_5:val", "--limit", "10", "--reference", "perov_5:test",
                 "--reference-limit", "20", "--out", str(out), "--n-samples", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # CDVAE coverage of 10 val crystals against 20 test ones: 1 of the 20 references and 2 of the 10 hit
    assert line["struct_valid"] == 1.0 and (line["cov_recall"], line["cov_precision"]) == (0.05, 0.2)
    table = pd.read_csv(out / "scores.csv", dtype={"id": str})
    assert len(table) == 10 and table["cov_precision_hit"].mean() == line["cov_precision"]
    assert list(pd.read_parquet(out / "scores.parquet")["id"]) == list(table["id"])
    assert json.loads((out / "summary.json").read_text())["cov_recall"] == line["cov_recall"]
    for name in ("density.png", "n_elements.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name  # a PNG image, not an empty file
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


@pytest.mark.parametrize("argv, code, text", [
    (["relax", "crystals", "/no/such/dir", "--out", "OUT"], 2, "input not found"),
    (["relax", "crystals", "perov_5", "--out", "OUT"], 2, "needs a split"),
    (["relax", "crystals", "perov_5:test", "--out", "OUT", "--fmax", "-1"], 2, "--fmax"),
    (["relax", "crystals", "perov_5:test", "--out", "OUT", "--chgnet", "9.9"], 2, "--chgnet"),
    (["relax"], 2, "crystals"),
    (["score", "crystals", "perov_5:val", "--out", "OUT"], 2, "--reference"),
    (["score", "crystals", "perov_5:val", "--limit", "2", "--reference", "perov_5:test", "--reference-limit", "2",
      "--out", "OUT", "--hull", "hull.pkl"], 2, "--trust-pickle"),
])
def test_cli_errors_are_one_line(argv: list[str], code: int, text: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in argv]
    if "hull.pkl" in argv:
        (tmp_path / "hull.pkl").write_bytes(b"not really")
        argv = [str(tmp_path / "hull.pkl") if a == "hull.pkl" else a for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # bad input: no output folder
