"""Bad input to ``genmatch train predictor``: exit 2, one stderr line, nothing written (the contract of
``bad_input_corpus.py``), through the real command line; and the Python verb's InputErrors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared corpus module, imported by its plain name
from bad_input_corpus import C, Case, Corpus, check_refusal, copy_of, evil_pickle, hold_lock, main  # noqa: E402

from structures.errors import InputError  # noqa: E402

pytestmark = pytest.mark.timeout(600)  # a hang fails (with its stack) instead of stalling CI

TINY = ["--steps", "2", "--eval-every", "2", "--hidden", "16", "--blocks", "1", "--heads", "2", "--batch-size", "8",
        "--limit", "24", "--holdout", "0.25", "--quiet", "--threads", "1"]
OK = ["train", "predictor", "perov_5:val", "--property", "heat_ref"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    import torch

    from pipeline.common.model_file import ModelFile, load_model_file, save_model_file
    from pipeline.crystals.flow import resolve_model_path
    from structures.data import resolve_dataset

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("predictor_corpus")
    c = Corpus(root, inputs=("csvs",))
    csvs = root / "csvs"
    csvs.mkdir()
    df = pd.read_csv(resolve_dataset("perov_5", "val"), nrows=24)
    df["all_nan"] = float("nan")
    df["inf_col"] = float("inf")
    df[["cif", "formula", "heat_ref", "all_nan", "inf_col"]].to_csv(csvs / "small.csv", index=False)
    df[["formula", "heat_ref"]].to_csv(csvs / "nocif.csv", index=False)
    (csvs / "binary.csv").write_bytes(b"\x00\xff\xfe\x00garbage\x80")
    c.paths.update(csvs=str(csvs), small=str(csvs / "small.csv"), nocif=str(csvs / "nocif.csv"),
                   binary=str(csvs / "binary.csv"), marker=str(root / "MARKER"), afile=str(csvs / "small.csv"))
    shipped = load_model_file(resolve_model_path("perov_5"))
    save_model_file(root / "protein_kind.safetensors", ModelFile(shipped.state_dict, {**shipped.record,
                                                                                       "kind": "protein"}))
    (root / "evil.safetensors").write_bytes(evil_pickle(root / "MARKER"))
    c.paths.update(protein_kind=str(root / "protein_kind.safetensors"), evil=str(root / "evil.safetensors"))
    run = root / "pred_run"
    assert main([*OK, *TINY, "--out", str(run)]) == 0
    c.paths["pred_run"] = str(run)
    c.paths["predictor"] = str(run / "predictor.safetensors")
    return c


def _evil_state(out: Path, c: Corpus) -> None:
    (out / "state.pt").write_bytes(evil_pickle(Path(c.paths["marker"])))


E = "{OUT}"
P = ["train", "predictor"]
CASES: dict[str, Case] = {
    "unknown-dataset": C(*P, "perov_6:val", "--property", "heat_ref", *TINY, "--out", E,
                         text="neither a CSV file nor a data set split"),
    "no-split": C(*P, "perov_5", "--property", "heat_ref", *TINY, "--out", E, text="needs a split"),
    "bad-split": C(*P, "perov_5:dev", "--property", "heat_ref", *TINY, "--out", E, text="needs a split"),
    "absent-split": C(*P, "mp_20:train", "--property", "band_gap", "--model", "perov_5", *TINY, "--out", E,
                      text="mp_20"),
    "no-property": C(*P, "perov_5:val", *TINY, "--out", E, text="--property"),
    "property-not-in-csv": C(*OK[:3], "--property", "band_gap", *TINY, "--out", E,
                             text="'band_gap' not a column of val.csv.xz; its numeric columns are"),
    "property-text": C(*P, "{small}", "--property", "formula", "--model", "perov_5", *TINY, "--out", E,
                       text="'formula' of small.csv is not numeric"),
    "property-all-nan": C(*P, "{small}", "--property", "all_nan", "--model", "perov_5", *TINY, "--out", E,
                          text="'all_nan' of small.csv has no values"),
    "property-inf": C(*P, "{small}", "--property", "inf_col", "--model", "perov_5", *TINY, "--out", E,
                      text="infinite values"),
    "property-twice": C(*OK, "--property", "heat_ref", *TINY, "--out", E, text="distinct"),
    "csv-no-generator": C(*P, "{small}", "--property", "heat_ref", *TINY, "--out", E,
                          text="no shipped generator for data set 'small'"),
    "csv-no-cif": C(*P, "{nocif}", "--property", "heat_ref", "--model", "perov_5", *TINY, "--out", E,
                    text="no 'cif' column"),
    "csv-binary": C(*P, "{binary}", "--property", "heat_ref", "--model", "perov_5", *TINY, "--out", E,
                    text="binary.csv"),
    "model-missing": C(*OK, "--model", "nope.safetensors", *TINY, "--out", E, text="neither a checkpoint file"),
    "model-other-kind": C(*OK, "--model", "{protein_kind}", *TINY, "--out", E, text="not a crystal generator"),
    "model-is-predictor": C(*OK, "--model", "{predictor}", *TINY, "--out", E, text="not a crystal generator"),
    "model-pickle": C(*OK, "--model", "{evil}", *TINY, "--out", E, text="not a genmatch safetensors"),
    "steps-0": C(*OK, *TINY, "--steps", "0", "--out", E, text="--steps"),
    "lr-nan": C(*OK, *TINY, "--lr", "nan", "--out", E, text="--lr"),
    "holdout-1": C(*OK, *TINY, "--holdout", "1", "--out", E, text="--holdout"),
    "clean-fraction-2": C(*OK, *TINY, "--clean-fraction", "2", "--out", E, text="--clean-fraction"),
    "heads": C(*OK, *TINY, "--heads", "3", "--out", E, text="divisible"),
    "limit-0": C(*OK, *TINY, "--limit", "0", "--out", E, text="--limit"),
    "min-std-0": C(*OK, *TINY, "--min-std", "0", "--out", E, text="--min-std"),
    "dropout-1": C(*OK, *TINY, "--dropout", "1", "--out", E, text="--dropout"),
    "weight-decay-neg": C(*OK, *TINY, "--weight-decay", "-1", "--out", E, text="--weight-decay"),
    "out-is-file": C(*OK, *TINY, "--out", "{afile}", text="is a file"),
    "other-run": C(*OK, *TINY, "--seed", "3", "--out", "{pred_run}", text="holds a train-predictor run with other"),
    "evil-state": C(*OK, *TINY, "--out", E, text="cannot be read safely", prepare=copy_of("pred_run", _evil_state)),
    "locked": C(*OK, *TINY, "--out", "{pred_run}", text="another genmatch process", prepare=hold_lock("pred_run")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_refused(name: str, corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_refusal(CASES[name], corpus, tmp_path, capsys)


def test_the_finished_run_is_returned(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(corpus["pred_run"], tmp_path / "out")
    before = (tmp_path / "out" / "predictor.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*OK, *TINY, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "trained a predictor to step 2" in out and "heat_ref MAE" in out
    assert (tmp_path / "out" / "predictor.safetensors").stat().st_mtime_ns == before


def test_python_verb_input_errors(tmp_path: Path) -> None:
    from workflows import crystals

    with pytest.raises(InputError, match="give data and properties"):
        crystals.train_predictor(out_dir=tmp_path / "a")
    with pytest.raises(InputError, match="unknown field"):
        crystals.train_predictor(data="perov_5:val", properties=["heat_ref"], bogus=1, out_dir=tmp_path / "b")
    with pytest.raises(InputError, match="out_dir"):
        crystals.train_predictor(data="perov_5:val", properties=["heat_ref"], out_dir=None)
    with pytest.raises(InputError, match="threads"):
        crystals.train_predictor(data="perov_5:val", properties=["heat_ref"], out_dir=tmp_path / "c", threads=0)
    assert not any(tmp_path.iterdir())
