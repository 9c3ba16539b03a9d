"""`genmatch demo` (workflows.demo): the crystal chain generate -> relax -> score and the protein chain
generate (flow / jump rotations) -> score at a tiny size.

Real models, real CHGNet, real scoring (ProteinMPNN, DSSP, TM-align); only the sizes are small (4 crystals,
8 sampler steps, 5 FIRE steps, 30 reference crystals; 2 proteins of length 20 per generator, 5 steps, novelty
vs 10 reference chains), so the numbers are meaningless but the plumbing is real.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from structures.errors import InputError
from workflows.cli import main
from workflows.demo import GENERATE_BATCH, DemoConfig, DemoSummary, run_demo

TINY = DemoConfig(n_generate=4, steps=8, relax_max_steps=5, reference_limit=30, n_crystals=3, n_proteins=3,
                  protein_lengths=(20,), protein_per_length=2, protein_steps=5, protein_reference_limit=10)
PROTEIN_PLOTS = ("lengths_rg.png", "secondary_structure.png", "tm.png")


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
    for rot in ("flow", "jump"):
        for name in ("manifest.json", "manifest.csv", "samples.fasta", "pdb/length_20_0000.pdb"):
            assert (out / f"proteins_{rot}" / name).is_file(), (rot, name)
        for name in ("summary.json", "summary.txt", "scores.csv", "scores.parquet", "tm_matrix.npz"):
            assert (out / f"proteins_{rot}_scores" / name).is_file(), (rot, name)
        for plot in PROTEIN_PLOTS:
            name = f"proteins_{rot}_{plot}"
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
            assert name in summary["files"] and name in summary["protein_generation"]["plots"]


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
    assert set(summary["wall_seconds"]) == {"sanity", "generate", "relax", "score", "proteins_generate",
                                            "proteins_score", "total"}
    assert summary["roundtrip"]["perov_5"]["n"] == 3 and summary["proteins"]["chains_summarised"] == 3
    assert json.loads((out / "summary.json").read_text())["cov_recall"] == s["cov_recall"]


def test_demo_protein_part(demo: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    from workflows.demo import format_summary

    out, summary = demo
    p = summary["protein_generation"]
    assert p["lengths"] == [20] and p["per_length"] == 2 and p["steps"] == 5 and p["seed"] == 0
    assert p["model"].endswith("protein_small.safetensors") and p["reference_limit"] == 10
    assert "first 10 reference chains (demo setting" in p["novelty_note"]
    assert summary["settings"]["protein_reference_limit"] == 10 and summary["settings"]["protein_lengths"] == [20]
    assert json.loads((out / "run.json").read_text())["settings"]["protein_steps"] == 5
    assert set(p["runs"]) == {"flow", "jump"}
    for rot, r in p["runs"].items():
        s = r["scores"]
        assert r["rotations"] == rot and r["generation"]["n"] == 2
        assert r["generation"]["settings"]["sampler"]["flow"]["rotations"]["kind"] == rot
        assert s["n_scored"] == 2 and s["n_reference"] == 10 and s["designability"].startswith("unavailable")
        assert s["helix"] + s["strand"] + s["coil"] == pytest.approx(1.0)
        for key in ("radius_of_gyration_mean", "with_clashes", "with_ca_ca_outliers", "mpnn_log_likelihood",
                    "mpnn_recovery", "cluster_fraction", "mean_pairwise_tm", "novelty"):
            assert s[key] is not None and np.isfinite(s[key]), (rot, key)
        assert json.loads((out / f"proteins_{rot}_scores" / "summary.json").read_text()) == s
    text = format_summary(DemoSummary.from_dict(summary))
    for label in ("metric (proteins)", "helix", "radius of gyration", "with clashes", "CA-CA outliers",
                  "MPNN log-lik. designs", "MPNN recovery", "clusters / samples", "mean pairwise TM", "novelty",
                  "novelty vs the first 10 reference chains (demo setting", "proteins_generate", "proteins_score"):
        assert label in text, label
    assert "flow" in text and "jump" in text


@pytest.mark.slow  # kept out of the default suite for time (issue 23's oracle tests)
def test_demo_resumed_equals_uninterrupted(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """A demo stopped after the flow proteins were scored (jump proteins not yet generated) resumes to the
    same report as the uninterrupted run: the same files, byte for byte, and the same summary."""
    out, first = demo
    run = tmp_path / "run"
    shutil.copytree(out, run)
    for p in [run / "demo_summary.json", run / "proteins_jump", run / "proteins_jump_scores",
              *run.glob("proteins_jump_*.png")]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    again = run_demo(TINY, run, progress=False, verbose=False).to_dict()
    for rot in ("flow", "jump"):
        for name in ("manifest.csv", "samples.fasta", "pdb/length_20_0001.pdb"):
            assert (run / f"proteins_{rot}" / name).read_bytes() == (out / f"proteins_{rot}" / name).read_bytes()
        for name in ("scores.csv", "summary.txt"):
            a, b = ((d / f"proteins_{rot}_scores" / name).read_text().replace(str(d), "OUT") for d in (run, out))
            assert a == b, (rot, name)

    def comparable(d: dict[str, Any], folder: Path) -> dict[str, Any]:
        d = json.loads(json.dumps(d).replace(str(folder), "OUT"))
        d.pop("wall_seconds")
        for r in d["protein_generation"]["runs"].values():
            r["generation"].pop("wall_s"), r["generation"].pop("samples_per_s")
        for key in ("generation", "relaxation"):
            d[key].pop("wall_s", None)
        return d

    assert comparable(again, run) == comparable(first, out)


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


@pytest.mark.slow  # kept out of the default suite for time (issue 23's oracle tests)
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


@pytest.mark.slow  # kept out of the default suite for time (issue 23's oracle tests)
def test_demo_cli_restart_and_bad_arguments(tmp_path: Path, cache: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ["--n-generate", "2", "--steps", "5", "--max-relax-steps", "2", "--reference-limit", "10",
            "--n-crystals", "2", "--n-proteins", "2", "--protein-lengths", "16", "--protein-per-length", "1",
            "--protein-steps", "3", "--protein-reference-limit", "5", "--quiet", "--out", str(tmp_path)]
    assert main(["demo", *tiny]) == 0
    printed = capsys.readouterr().out
    assert "struct. valid" in printed and "novelty vs the first 5 reference chains (demo setting" in printed
    assert main(["demo", *tiny, "--steps", "6"]) == 2  # another run in OUT: one-line error, nothing changed
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--restart" in err
    assert main(["demo", *tiny, "--steps", "6", "--restart"]) == 0
    assert json.loads((tmp_path / "demo_summary.json").read_text())["settings"]["steps"] == 6
    for bad in (["--n-generate", "0"], ["--hull", "bogus"], ["--max-relax-steps", "-1"], ["--steps", "x"],
                ["--protein-steps", "0"], ["--protein-lengths", "0"], ["--protein-reference-limit", "0"]):
        assert main(["demo", *tiny, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_generated_structures_are_the_decoded_samples(demo: tuple[Path, dict[str, Any]]) -> None:
    """The on-disk run returns exactly what in-memory sampling returns (decoded tokens, not re-read CIFs)."""
    from workflows import crystals

    out, _ = demo
    kw: dict[str, Any] = dict(n=4, model="perov_5", steps=8, batch_size=GENERATE_BATCH, progress=False)
    disk = crystals.generate(out_dir=out / "generated", **kw)
    memory = crystals.generate(**kw)
    assert disk.ids == memory.ids
    assert [s.as_dict() for s in disk.structures] == [s.as_dict() for s in memory.structures]


def test_coincident_atoms_survive_relax_checkpoint(tmp_path: Path) -> None:
    """A sample with two atoms on one site (structurally invalid, still scored) cannot round-trip
    through CIF; the relax checkpoint keeps it exactly, marks it failed, and resumes."""
    from pymatgen.core import Lattice, Structure

    from workflows import crystals

    s = Structure(Lattice.cubic(4.4), ["Ca", "N", "O", "O", "O"],
                  [[0.49, 0.5, 0.5], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    run = crystals.relax({"x": s}, max_steps=2, out_dir=tmp_path, progress=False)
    assert list(run.table["status"]) == ["failed"] and "overlapping" in run.table["reason"][0]
    assert run.structures[0] == s
    again = crystals.relax({"x": s}, max_steps=2, out_dir=tmp_path, progress=False)
    assert again.structures[0] == s and again.table.equals(run.table)
