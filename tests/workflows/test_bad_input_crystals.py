"""The bad-input corpus for crystals (issue 11): every crystal verb and the demo, every kind of bad input,
through the real command line. The contract and the shared helpers are in ``bad_input_corpus.py``."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared corpus module, imported by its plain name
from bad_input_conditions import CONDITION_ERRORS  # noqa: E402
from bad_input_gaps import GAP_ERRORS, last_gaps  # noqa: E402
from bad_input_corpus import (GEN, NON_UTF8, RELAX0, SCORE, TRAIN, C, Case, Corpus, check_refusal,  # noqa: E402
                              cli, copy_of, crystal_corpus, evil_pickle, evil_resume_state, hold_lock,
                              leftover_start, snapshot, stale, write_csv)

pytestmark = pytest.mark.timeout(600)  # a hang fails (with its stack) instead of stalling CI


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return last_gaps(crystal_corpus(tmp_path_factory))


E = "{OUT}"
ERRORS: dict[str, Case] = {  # name -> case
    # ---- options: non-finite and out of range, refused at parse time
    "gen-temperature-inf": C("generate", "crystals", *GEN, "--temperature", "inf", "--out", E, text="--temperature"),
    "gen-temperature-nan": C("generate", "crystals", *GEN, "--temperature", "nan", "--out", E, text="--temperature",
                             sub=True),
    "gen-temperature-0": C("generate", "crystals", *GEN, "--temperature", "0", "--out", E, text="--temperature"),
    "gen-seed-negative": C("generate", "crystals", *GEN, "--seed", "-1", "--out", E, text="--seed"),
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
                                       prepare=copy_of("train_run", evil_resume_state)),
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
                            prepare=stale("relax")),
    "score-stale-inputs": C("score", "crystals", "{tmp}/inputs", "--reference", "{ref}", *SCORE, "--out", E,
                            text="other inputs", prepare=stale("score")),
    "relax-locked-run": C("relax", "crystals", "{good}", *RELAX0, "--out", "{relax_run}",
                          text="another genmatch process", prepare=hold_lock("relax_run")),
    "gen-locked-run": C("generate", "crystals", "--model", "perov_5", *GEN, "--out", "{gen_run}",
                        text="another genmatch process", prepare=hold_lock("gen_run")),
}

ERRORS.update(CONDITION_ERRORS)  # generate crystals with conditions (issue 23): bad_input_conditions.py
ERRORS.update(GAP_ERRORS)  # issue 25's crystal leftovers: bad_input_gaps.py


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_input_exits_2_and_changes_nothing(name: str, corpus: Corpus, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    check_refusal(ERRORS[name], corpus, tmp_path, capsys)


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
    "mix_unknown_element": ("bad_unknown_element", "bad input: species Xx0+ is not a chemical element"),
    "mix_cut_rows": ("bad_cut_rows", "bad input: the CIF states 'TlRuO2F x Z=1' but its atom sites give"),
}


@pytest.mark.parametrize("folder", list(ROWS))
def test_relax_records_a_bad_item_as_a_failed_row(folder: str, corpus: Corpus, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = cli(["relax", "crystals", str(corpus[folder]), *RELAX0, "--out", str(out)], capsys)
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


@pytest.mark.parametrize("folder", ["mix_garbage", "mix_cut_lines", "mix_unknown_element",
                                    "mix_cut_rows"])
def test_score_records_a_bad_item_as_an_unusable_row(folder: str, corpus: Corpus, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = cli(["score", "crystals", str(corpus[folder]), "--reference", str(corpus["ref"]), *SCORE,
                            "--out", str(out)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    line = json.loads(stdout.strip().splitlines()[-1])
    assert line["n_input"] == 2 and line["n_unusable"] == 1
    t = pd.read_csv(out / "scores.csv", keep_default_na=False)
    bad_id = ROWS[folder][0]
    assert dict(zip(t["id"], t["usable"].astype(str))) == {"g0": "True", bad_id: "False"}
    assert t.loc[t["id"] == bad_id, "problem"].item() != ""
    assert json.loads((out / "summary.json").read_text())["n_unusable"] == 1


def test_special_entries_are_rows_and_odd_names_get_safe_ids(corpus: Corpus, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A CIF folder holding a fifo, a dangling link, a symlink loop and a folder named x.cif: one failed row each,
    with its reason, and the fifo is never opened (the run would block); a file whose name is not valid UTF-8 or
    holds a space is scored under a safe id (structures.ids)."""
    src = tmp_path / "in"
    shutil.copytree(corpus["mix_non_utf8_name"], src)  # g0.cif and a non-UTF-8 name
    shutil.copy(src / "g0.cif", src / "a b.cif")
    os.mkfifo(src / "fifo.cif")
    (src / "dangling.cif").symlink_to(src / "nowhere.cif")
    (src / "loop.cif").symlink_to(src / "loop.cif")
    (src / "dir.cif").mkdir()
    out = tmp_path / "out"
    rc, stdout, err = cli(["score", "crystals", str(src), "--reference", str(corpus["ref"]), *SCORE,
                           "--out", str(out)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    t = pd.read_csv(out / "scores.csv", keep_default_na=False).set_index("id")
    reasons = {"fifo": "a fifo (named pipe)", "dangling": "broken symbolic link", "loop": "symbolic link loop",
               "dir": "a folder, not a file"}
    for ident, reason in reasons.items():
        assert t.loc[ident, "usable"].astype(str) == "False" and reason in t.loc[ident, "problem"], ident
    usable = set(t.index[t["usable"].astype(str) == "True"])
    assert "g0" in usable and len(usable) == 3
    assert all(i.isascii() and " " not in i for i in usable)


def test_a_single_special_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fifo given as the input is refused without opening it, and nothing is written."""
    os.mkfifo(tmp_path / "x.cif")
    out = tmp_path / "out"
    rc, _, err = cli(["relax", "crystals", str(tmp_path / "x.cif"), *RELAX0, "--out", str(out)], capsys)
    assert rc == 2 and "a fifo (named pipe)" in err and not out.exists(), err


def test_score_gives_no_e_hull_to_a_structurally_invalid_crystal(corpus: Corpus, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, err = cli(["score", "crystals", str(corpus["mix_overlap"]), "--reference", str(corpus["ref"]),
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
    leftover_start(corpus, tmp_path)
    out = tmp_path / "out"
    rc, stdout, err = cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    assert json.loads((out / "run.json").read_text())["settings"]["max_steps"] == 0
    assert len(pd.read_csv(out / "relax_results.csv")) == 3
    assert not list(out.rglob(".*.tmp"))


def test_the_same_command_resumes_a_finished_run_unchanged(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    """The counterpart of the refusals: the same inputs and settings into a finished run change no result."""
    out = corpus["relax_run"]
    before = {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"}
    rc, _, err = cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    assert {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"} == before


def test_demo_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENMATCH_DATA", str(tmp_path))
    rc, _, err = cli(["demo", "--quiet", "--out", str(tmp_path / "demo")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not found" in err
    assert not (tmp_path / "demo").exists()


def test_the_malicious_payload_is_live(tmp_path: Path) -> None:
    """The corpus' pickles really would run code if unpickled: the marker checks above are not vacuous."""
    marker = tmp_path / "marker"
    pickle.loads(evil_pickle(marker))
    assert marker.exists()


def test_an_uncreatable_output_folder_exits_2(corpus: Corpus, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A folder no user may create (Linux refuses mkdir under /sys to root too, so this runs as any user)."""
    out = Path("/sys") / f"genmatch-{os.getpid()}" / "out"
    rc, _, err = cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "cannot create the output folder" in err, err
    assert not out.parent.exists()


def test_non_utf8_folder_names_work(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Input and output folders whose names are not valid UTF-8 are legal on Linux: relax, then score with
    the relax_results.parquet energies (pyarrow cannot open such paths itself; we hand it bytes)."""
    src = tmp_path / f"in_{NON_UTF8}"
    shutil.copytree(corpus["good"], src)
    relaxed = tmp_path / f"relax_{NON_UTF8}"
    rc, _, err = cli(["relax", "crystals", str(src), *RELAX0, "--out", str(relaxed)], capsys)
    assert rc == 0 and not err.strip(), err
    assert len(pd.read_csv(relaxed / "relax_results.csv")) == 3 and (relaxed / "relax_results.parquet").is_file()
    scored = tmp_path / f"score_{NON_UTF8}"
    rc, _, err = cli(["score", "crystals", str(relaxed / "relaxed"), "--reference", str(corpus["ref"]), *SCORE,
                       "--energies", str(relaxed / "relax_results.parquet"), "--hull", "mp-elements",
                       "--out", str(scored)], capsys)
    assert rc == 0 and "Traceback" not in err, err
    assert json.loads((scored / "summary.json").read_text())["energy_source"] == "given"


def test_a_non_utf8_path_in_an_error_is_printable(corpus: Corpus, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The one stderr line survives a path that is not valid UTF-8 (no UnicodeEncodeError, no traceback)."""
    out = tmp_path / f"out_{NON_UTF8}"
    out.write_text("a file")
    rc, _, err = cli(["relax", "crystals", str(corpus["good"]), *RELAX0, "--out", str(out)], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "out_caf\\udce9: the output path is a file" in err


def test_a_bad_csv_row_is_one_failed_row(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CDVAE CSV follows the same rule as a CIF folder: one unusable row is one failed row."""
    from structures.data import load_crystals

    good = load_crystals("perov_5", "test", limit=1).structures[0].to(fmt="cif")
    csv = write_csv(tmp_path / "mixed.csv", [good, "garbage", good.replace("_cell_length_a", "_cell_length_a -")])
    out = tmp_path / "out"
    rc, stdout, err = cli(["relax", "crystals", str(csv), *RELAX0, "--out", str(out)], capsys)
    assert rc == 0 and not err.strip(), err
    t = pd.read_csv(out / "relax_results.csv", keep_default_na=False)
    assert list(t["status"] == "failed") == [False, True, True]
    assert all(r.startswith("bad input: ") for r in t["reason"][1:])
