"""The run mechanism (pipeline.common.run): resume, refuse, restart, take-over, lock, temporaries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT

from pipeline.common.run import LOCK_FILE, RUN_FILE, RunRecord, fingerprint, open_run
from structures.errors import InputError


def test_fingerprint_is_by_content_not_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a.cif", tmp_path / "b.cif"
    a.write_text("same")
    b.write_text("same")
    assert fingerprint([a]) == fingerprint([b])
    b.write_text("other")
    assert fingerprint([a]) != fingerprint([b])
    assert fingerprint(["x", 1]) != fingerprint(["x1"])  # parts are delimited
    assert fingerprint([[1, 2], 3]) != fingerprint([1, [2, 3]])


def test_new_resume_refuse_restart(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with open_run(out, "k", {"a": 1}, "in1") as run:
        assert not run.resumed
        (out / "result.txt").write_text("r")
    with open_run(out, "k", {"a": 1}, "in1") as run:
        assert run.resumed and (out / "result.txt").is_file()
    before = sorted(p.name for p in out.iterdir())
    for kind, settings, inputs in (("k", {"a": 2}, "in1"), ("k", {"a": 1}, "in2"), ("other", {"a": 1}, "in1")):
        with pytest.raises(InputError, match="--restart"):
            with open_run(out, kind, settings, inputs):
                pass
    assert sorted(p.name for p in out.iterdir()) == before  # refused: nothing touched
    with open_run(out, "k", {"a": 2}, "in1", restart=True) as run:
        assert not run.resumed and not (out / "result.txt").exists()
    assert RunRecord.from_json((out / RUN_FILE).read_text()).settings == {"a": 2}


def test_failed_start_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with open_run(out, "k", {"a": 1}, "x"):
        pass  # nothing recorded: a failed start
    with open_run(out, "k", {"a": 2}, "y") as run:
        assert not run.resumed


def test_bad_input_found_inside_a_new_run_leaves_nothing(tmp_path: Path) -> None:
    """An InputError raised after the folder was opened (e.g. NaN in a model's weights, read only when it loads)
    removes what the new run made: the folder it created, or the bookkeeping in an empty folder it was given."""
    out = tmp_path / "run"
    with pytest.raises(InputError), open_run(out, "k", {"a": 1}, "x"):
        (out / ".scores.csv.1234.tmp").write_text("half")
        raise InputError("bad weights")
    assert not out.exists()
    out.mkdir()
    with pytest.raises(InputError), open_run(out, "k", {"a": 1}, "x"):
        raise InputError("bad weights")
    assert out.is_dir() and list(out.iterdir()) == []
    with open_run(out, "k", {"a": 1}, "x"):  # a run with a result keeps it when a later error comes
        (out / "result.txt").write_text("done")
    with pytest.raises(InputError), open_run(out, "k", {"a": 1}, "x"):
        raise InputError("late")
    assert (out / RUN_FILE).is_file() and (out / "result.txt").is_file()


def test_foreign_folder_refused_even_with_restart(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    for restart in (False, True):
        with pytest.raises(InputError, match="holds no genmatch run"):
            with open_run(tmp_path, "k", {}, "x", restart=restart):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_output_path_is_a_file_or_unwritable(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(InputError, match="is a file"):
        with open_run(f, "k", {}, "x"):
            pass
    with pytest.raises(InputError, match="cannot create"):
        with open_run(f / "sub", "k", {}, "x"):
            pass


def test_non_finite_setting_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="finite"):
        with open_run(tmp_path / "r", "k", {"t": float("nan")}, "x"):
            pass
    assert not (tmp_path / "r").exists()


def test_temporaries_removed_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with open_run(out, "k", {}, "x"):
        (out / "sub").mkdir()
        (out / "sub" / ".a.cif.abc.tmp").write_text("half")
        (out / "done.txt").write_text("d")
    with open_run(out, "k", {}, "x") as run:
        assert run.resumed
    assert not (out / "sub" / ".a.cif.abc.tmp").exists() and (out / "done.txt").exists()


def test_second_process_is_locked_out(tmp_path: Path) -> None:
    out = tmp_path / "run"
    root = REPO_ROOT
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(root)!r})
        from pipeline.common.run import open_run
        from structures.errors import InputError
        try:
            with open_run({str(out)!r}, "k", {{}}, "x"):
                print("opened")
        except InputError as e:
            print("refused:", e)
    """)
    with open_run(out, "k", {}, "x"):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "refused:" in res.stdout and "another genmatch process" in res.stdout, res.stdout + res.stderr
    assert (out / LOCK_FILE).exists()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "opened" in res.stdout, res.stdout + res.stderr


def _score_summary(stability: bool) -> Any:
    from pipeline.crystals.score.summary import ScoreSummary, StabilitySummary

    st = StabilitySummary(hull="default:perov_5:val[30]", energy_source="given", e_hull_threshold=0.0, n_e_hull=4,
                          e_hull_quantiles={"0.05": -0.1, "0.5": 0.02, "0.95": 0.3}, stable_rate=0.5, n_stable=2,
                          unique_among_stable=1.0, hull_coverage=0.75, n_hull_covered=3, n_hull_coverable=4,
                          stable_rate_is_upper_bound=True, n_stable_hull_covered=1, sun_rate=0.25, n_sun=1)
    return ScoreSummary(n_structures=4, n_reference=30, dataset="perov_5", struct_valid=1.0, comp_valid=0.75,
                        valid=0.75, cov_recall=0.1, cov_precision=0.5, struc_cutoff=0.1, comp_cutoff=10.0,
                        wdist_density=0.2, wdist_num_elems=0.0, n_wdist_samples=3, wdist_seed=0,
                        n_struct_fp_failed=0, note="only 3 valid structures (< 1000); property distances use all "
                        "of them", stability=st if stability else None, n_input=5, n_unusable=1, input="in/",
                        reference_source="perov_5:test")


def test_score_summary_round_trips_json_in_the_flat_layout() -> None:
    from pipeline.crystals.score.summary import ScoreSummary, StabilitySummary

    assert not {f.name for f in fields(ScoreSummary)} & {f.name for f in fields(StabilitySummary)}
    for stability in (True, False):
        s = _score_summary(stability)
        assert ScoreSummary.from_json(s.to_json()) == s
        s.add_rates_over_all(4, 5)
        assert s.valid_all == pytest.approx(0.6) and s.cov_precision_all == pytest.approx(0.4)
        assert ScoreSummary.from_json(s.to_json()) == s
        d = json.loads(s.to_json())
        assert "stability" not in d and ("stable_rate" in d) == stability and ("sun_rate" in d) == stability
        assert d["dataset"] == "perov_5" and d["n_input"] == 5 and d["valid_all"] == pytest.approx(0.6)
    bare = replace(_score_summary(True), note=None, n_input=None, n_unusable=None, input=None, reference_source=None,
                   stability=replace(_score_summary(True).stability, sun_rate=None, n_sun=None), dataset=None)
    d = bare.to_dict()
    assert d["dataset"] is None  # a required field is written even when None; optional ones are left out
    assert not {"note", "n_input", "input", "sun_rate", "n_sun", "struct_valid_all"} & set(d)
    assert ScoreSummary.from_dict(d) == bare
    st = bare.stability.to_dict()
    nested = {**{k: v for k, v in d.items() if k not in st}, "stability": st}
    assert ScoreSummary.from_dict(nested) == bare
    nan = replace(bare, wdist_density=float("nan"), stability=replace(bare.stability, unique_among_stable=float("nan")))
    assert ScoreSummary.from_json(nan.to_json()).to_json() == nan.to_json()  # NaN != NaN: compare the text
    with pytest.raises(ValueError, match="unknown fields"):
        ScoreSummary.from_dict({**d, "bogus": 1})


def test_typed_summaries_round_trip_json() -> None:
    from pipeline.crystals.generate import GenerationSummary
    from pipeline.crystals.relax import RelaxSummary
    from pipeline.proteins.generate import ProteinGenerationSummary
    from pipeline.proteins.score.summary import ProteinScoreSummary
    from workflows.demo import DemoScores, DemoSummary
    from workflows.demo.proteins import DemoProteinRun, DemoProteins

    g = GenerationSummary(n=3, decoded=2, decode_failed=1, failures_by_reason={"bad_lattice": 1}, not_writable=1,
                          decode_rate=2 / 3, settings={"steps": 10})
    r = RelaxSummary(n=2, converged=1, step_limit=0, failed=1, failure_reasons={"bad input": 1}, mean_steps=4.0,
                     mean_energy_drop_per_atom=0.1, n_bad_input=1, settings={"fmax": 0.1})
    s = _score_summary(stability=True).add_rates_over_all(2, 3)
    ds = DemoScores.extend(s, hull_name="default", hull_note="note", n_generated=3, n_decode_failed=1,
                           n_relax_failed_scored_unrelaxed=0, median_e_hull=0.01)
    pg = ProteinGenerationSummary(n=2, mode="codesign", batches=1, wall_s=1.5, samples_per_s=1.3,
                                  settings={"sampler": {"steps": 5}})
    ps = ProteinScoreSummary(n_input=2, n_scored=2, designability="unavailable (no ESMFold weights at x)",
                             helix=0.5, strand=0.1, coil=0.4, novelty=0.6, n_reference=10, protocol={"dssp": "pydssp"})
    p = DemoProteins(model="m.safetensors", lengths=[20], per_length=2, steps=5, seed=0, reference_limit=10,
                     novelty_note="novelty vs the first 10 reference chains (demo setting)",
                     runs={"flow": DemoProteinRun("flow", "a", "b", pg, ps),
                           "jump": DemoProteinRun("jump", "c", "d", pg, ps)},
                     plots=["proteins_flow_tm.png"])
    d = DemoSummary(out_dir="x", settings={}, roundtrip={}, proteins={}, generation=g.to_dict(),
                    relaxation=r.to_dict(), scores=ds, protein_generation=p)
    d2 = DemoSummary(out_dir="x", settings={}, roundtrip={}, proteins={}, generation=g.to_dict(),
                     relaxation=r.to_dict(), scores=ds, protein_generation=p,
                     scores_as_generated=_score_summary(stability=False))
    for rec in (g, r, pg, ps, p, d, d2):
        assert type(rec).from_json(rec.to_json()) == rec
    assert d.to_dict()["protein_generation"]["runs"]["jump"]["scores"]["novelty"] == 0.6
    assert isinstance(DemoSummary.from_json(d.to_json()).protein_generation.runs["flow"].scores, ProteinScoreSummary)
    assert d.to_dict()["scores_as_generated"] == {} and d.to_dict()["scores"]["hull_name"] == "default"
    assert d.to_dict()["scores"]["stable_rate"] == 0.5  # the flat layout of summary.json
    with pytest.raises(ValueError, match="unknown fields"):
        GenerationSummary.from_dict({**g.to_dict(), "bogus": 1})
