"""`genmatch demo` (workflows.demo): the crystal chain generate -> relax -> score at a tiny size.

Real model, real CHGNet, real scoring; only the sizes are small (4 crystals, 8 sampler steps,
5 FIRE steps, 30 reference crystals), so the numbers are meaningless but the plumbing is real.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from structures.errors import InputError
from workflows.cli import main
from workflows.demo import GENERATE_BATCH, DemoConfig, DemoSummary, run_demo

TINY = DemoConfig(n_generate=4, steps=8, relax_max_steps=5, reference_limit=30, n_crystals=3, n_proteins=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMATCH_CACHE", str(tmp_path_factory.mktemp("cache")))  # cold, private cache
        yield


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, cache: Any) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    summary = run_demo(TINY, out, progress=False)
    assert isinstance(summary, DemoSummary)
    assert DemoSummary.from_json(summary.to_json()).to_json() == summary.to_json()
    return out, summary.to_dict()


def test_demo_writes_every_report_file(demo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = demo
    for name in ("demo_summary.json", "run.json", "summary.json", "scores.csv", "scores.parquet",
                 "density.png", "n_elements.png", "e_hull.png", "generated/manifest.json", "generated/manifest.csv",
                 "relaxed/relax_results.csv", "relaxed/relax_results.parquet", "relaxed/relax_summary.json",
                 "as_generated/summary.json", "as_generated/scores.csv"):
        assert (out / name).is_file(), name
    assert (out / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp")), "temporary file left behind"
    assert json.loads((out / "demo_summary.json").read_text()) == json.loads(json.dumps(summary))
    assert set(summary["files"]) >= {"demo_summary.json", "summary.json", "scores.csv", "e_hull.png"}


def test_demo_stage_summaries_are_consistent(demo: tuple[Path, dict[str, Any]]) -> None:
    out, summary = demo
    g, r, s = summary["generation"], summary["relaxation"], summary["scores"]
    assert g["n"] == 4 and g["decoded"] + g["decode_failed"] == 4
    assert r["n"] == g["decoded"] and r["converged"] + r["step_limit"] + r["failed"] == r["n"]
    assert r["max_steps"] == 5 and r["settings"]["fmax"] == 0.1 and r["settings"]["relax_cell"] is True
    assert s["n_structures"] == g["decoded"] and s["n_reference"] == 30 and s["dataset"] == "perov_5"
    assert s["hull_name"] == "default" and "chemical systems" in s["hull_note"]
    assert s["hull"].startswith("default:perov_5:val[") and s["energy_source"] == "given"
    assert s["valid_all"] == pytest.approx(s["valid"] * g["decoded"] / g["n"])
    assert summary["scores_as_generated"]["n_structures"] == g["decoded"]
    assert "e_hull" not in pd.read_csv(out / "as_generated" / "scores.csv").columns
    assert set(summary["wall_seconds"]) == {"sanity", "generate", "relax", "score", "total"}
    assert summary["roundtrip"]["perov_5"]["n"] == 3 and summary["proteins"]["chains_summarised"] == 3
    assert json.loads((out / "summary.json").read_text())["cov_recall"] == s["cov_recall"]


def test_demo_scores_table_carries_the_relaxation(demo: tuple[Path, dict[str, Any]]) -> None:
    out, _ = demo
    scores = pd.read_csv(out / "scores.csv")
    relax = pd.read_csv(out / "relaxed" / "relax_results.csv")
    manifest = json.loads((out / "generated" / "manifest.json").read_text())["rows"]
    decoded = [m["id"] for m in manifest if m["status"] != "decode_failed"]  # "ok" and "not_writable" (no CIF)
    assert list(scores["id"]) == list(relax["id"]) == decoded
    assert list(scores["relax_status"]) == list(relax["status"])
    assert (scores["relaxed"] == (relax["status"] != "failed")).all()
    assert np.allclose(scores.loc[scores["relaxed"], "energy_per_atom"],
                       relax.loc[relax["status"] != "failed", "e_final_per_atom"])
    assert scores.loc[~scores["relaxed"], "e_hull"].isna().all()  # failed relaxations: no E_hull
    assert (scores["relax_steps"] <= 5).all()
    assert pd.read_parquet(out / "scores.parquet").shape == scores.shape


def test_demo_rerun_resumes_without_regenerating(demo: tuple[Path, dict[str, Any]],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, first = demo
    batch = out / "generated" / "batches" / "00000.json"
    ckpt = out / "relaxed" / "relax_checkpoint.jsonl"
    before = (batch.stat().st_mtime_ns, ckpt.read_text())
    again = run_demo(TINY, out, progress=False).to_dict()
    assert (batch.stat().st_mtime_ns, ckpt.read_text()) == before  # nothing sampled or relaxed again
    for key in ("valid_all", "cov_recall", "cov_precision", "wdist_density", "median_e_hull"):
        assert again["scores"][key] == pytest.approx(first["scores"][key], nan_ok=True)
    table = capsys.readouterr().out
    assert "COV-R" in table and "median E_hull" in table and "wall time" in table
    run_json = (out / "run.json").read_bytes()
    with pytest.raises(InputError, match="other steps"):
        run_demo(replace(TINY, steps=9), out, progress=False)
    assert (out / "run.json").read_bytes() == run_json  # refused: nothing changed


def test_demo_cli_restart_and_bad_arguments(tmp_path: Path, cache: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--n-generate", "2", "--steps", "5", "--max-relax-steps", "2", "--reference-limit", "10",
            "--n-crystals", "2", "--n-proteins", "2", "--quiet", "--out", str(tmp_path)]
    assert main(["demo", *tiny]) == 0
    assert "struct. valid" in capsys.readouterr().out
    assert main(["demo", *tiny, "--steps", "6"]) == 2  # another run in OUT: one-line error, nothing changed
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--restart" in err
    assert main(["demo", *tiny, "--steps", "6", "--restart"]) == 0
    assert json.loads((tmp_path / "demo_summary.json").read_text())["settings"]["steps"] == 6
    for bad in (["--n-generate", "0"], ["--hull", "bogus"], ["--max-relax-steps", "-1"], ["--steps", "x"]):
        assert main(["demo", *tiny, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_generated_structures_are_the_decoded_samples(demo: tuple[Path, dict[str, Any]]) -> None:
    """The on-disk run returns exactly what in-memory sampling returns (decoded tokens, not re-read CIFs)."""
    from workflows.generate import generate_crystals

    out, _ = demo
    kw: dict[str, Any] = dict(steps=8, batch_size=GENERATE_BATCH, progress=False)
    disk = generate_crystals(4, "perov_5", out_dir=out / "generated", **kw)
    memory = generate_crystals(4, "perov_5", **kw)
    assert disk.ids == memory.ids
    assert [s.as_dict() for s in disk.structures] == [s.as_dict() for s in memory.structures]


def test_coincident_atoms_survive_relax_checkpoint(tmp_path: Path) -> None:
    """A sample with two atoms on one site (structurally invalid, still scored) cannot round-trip
    through CIF; the relax checkpoint keeps it exactly, marks it failed, and resumes."""
    from pymatgen.core import Lattice, Structure

    from workflows.crystals import RelaxConfig, relax_crystals

    s = Structure(Lattice.cubic(4.4), ["Ca", "N", "O", "O", "O"],
                  [[0.49, 0.5, 0.5], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    run = relax_crystals([s], ids=["x"], config=RelaxConfig(max_steps=2), out_dir=tmp_path, progress=False)
    assert list(run.table["status"]) == ["failed"] and "overlapping" in run.table["reason"][0]
    assert run.structures[0] == s
    again = relax_crystals([s], ids=["x"], config=RelaxConfig(max_steps=2), out_dir=tmp_path, progress=False)
    assert again.structures[0] == s and again.table.equals(run.table)
