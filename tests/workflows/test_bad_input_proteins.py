"""The bad-input corpus for proteins (issues 11 and 25): ``generate / score / train proteins`` and ``info
--checkpoint``, every kind of bad input (options, structures, FASTA, lengths, model files, special files, output
folders, names), through the real command line. The contract and the shared helpers are in ``bad_input_corpus.py``:
exit code 2, one stderr line naming the problem, no traceback, the output folder and the inputs byte for byte
unchanged, no malicious pickle executed. The structure / FASTA / special-file cases and their inputs are in
``bad_input_protein_files.py``; ``test_protein_limits.py`` adds the memory, device, dask and ESMFold refusals.
The counterparts: a folder mixing good files with each bad kind is scored (one failed row per bad entry), and
names that are not UTF-8 or not safe become safe ids."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared corpus module, imported by its plain name
from bad_input_corpus import C, Case, Corpus, check_refusal, evil_pickle, hold_lock, snapshot  # noqa: E402
from bad_input_protein_conditions import DESIGN_ERRORS  # noqa: E402
from bad_input_protein_files import BAD_STRUCTURES, FILE_ERRORS, SPECIAL, protein_inputs  # noqa: E402
from protein_files import finishes  # noqa: E402

from structures.ids import safe_id  # noqa: E402
from workflows.cli import main  # noqa: E402

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling CI

QUIET = ["--quiet", "--threads", "1"]
GEN = ["--lengths", "50", "--per-length", "1", "--steps", "2", *QUIET]
TRAIN = ["--max-steps", "1", "--val-every", "1", *QUIET]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """FASTA files (good, headerless, with letters outside the alphabet), malicious model files, a file where a
    folder belongs, and one finished ``generate proteins`` run (one 50-residue chain, 2 steps) to point at."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("protein_corpus")
    c = Corpus(root, inputs=("inputs",))
    inputs = root / "inputs"
    inputs.mkdir()
    c.paths["inputs"] = str(inputs)
    files = {"good.fasta": ">a\nMKVLAAGIVALLLAAGCSS\n", "headerless.fasta": "MKVLAAGIVALLLAAGCSS\n",
             "empty.fasta": "", "afile": "a regular file where a folder is expected\n"}
    for name, text in files.items():
        (inputs / name).write_text(text)
        c.paths[name.replace(".", "_")] = str(inputs / name)
    c.paths["marker"] = str(root / "MARKER")
    evil = evil_pickle(root / "MARKER")  # a raw pickle, as a MultiFlow .ckpt and under a safetensors name
    for name in ("evil.ckpt", "evil.safetensors"):
        (inputs / name).write_bytes(evil)
        c.paths[name.replace(".", "_")] = str(inputs / name)

    class Payload:  # the same payload inside torch's zip format (what torch.save writes)
        def __reduce__(self):  # noqa: ANN204
            return (open, (str(root / "MARKER"), "w"))

    torch.save({"state_dict": {"w": Payload()}}, inputs / "evil_zip.ckpt")
    c.paths["evil_zip_ckpt"] = str(inputs / "evil_zip.ckpt")
    c.paths["gen_run"] = str(root / "gen_run")
    assert main(["generate", "proteins", *GEN, "--out", c.paths["gen_run"]]) == 0
    return protein_inputs(c)


E = "{OUT}"
ERRORS: dict[str, Case] = {  # name -> case
    # ---- options: out of range or unknown, refused at parse time
    "gen-lengths-0": C("generate", "proteins", "--lengths", "0", "--out", E, text="--lengths"),
    "gen-lengths-text": C("generate", "proteins", "--lengths", "fifty", "--out", E, text="--lengths"),
    "gen-per-length-0": C("generate", "proteins", "--per-length", "0", "--out", E, text="--per-length"),
    "gen-seed-negative": C("generate", "proteins", "--seed", "-1", "--out", E, text="--seed"),
    "gen-steps-0": C("generate", "proteins", "--steps", "0", "--out", E, text="--steps"),
    "gen-jump-weight-2": C("generate", "proteins", "--jump-weight", "2", "--out", E, text="--jump-weight"),
    "gen-jump-weight-nan": C("generate", "proteins", "--jump-weight", "nan", "--out", E, text="--jump-weight"),
    "gen-mode": C("generate", "proteins", "--mode", "bogus", "--out", E, text="--mode"),
    "gen-rotations": C("generate", "proteins", "--rotations", "spin", "--out", E, text="--rotations"),
    "gen-sequence": C("generate", "proteins", "--sequence", "gibbs", "--out", E, text="--sequence"),
    "gen-scheduler": C("generate", "proteins", "--scheduler", "quartic", "--out", E, text="--scheduler"),
    "gen-precision": C("generate", "proteins", "--precision", "fp8", "--out", E, text="--precision"),
    "gen-residue-budget-0": C("generate", "proteins", "--residue-budget", "0", "--out", E, text="--residue-budget"),
    "score-limit-0": C("score", "proteins", "{inputs}", "--limit", "0", "--out", E, text="--limit"),
    "score-mpnn-model": C("score", "proteins", "{inputs}", "--mpnn-model", "v_99", "--out", E, text="--mpnn-model"),
    "score-mpnn-temperature-0": C("score", "proteins", "{inputs}", "--mpnn-temperature", "0", "--out", E,
                                  text="--mpnn-temperature"),
    "score-workers-0": C("score", "proteins", "{inputs}", "--workers", "0", "--out", E, text="--workers"),
    "train-min-length-0": C("train", "proteins", "--min-length", "0", "--out", E, text="--min-length"),
    "train-forward-fold-prob-2": C("train", "proteins", "--forward-fold-prob", "2", "--out", E,
                                   text="--forward-fold-prob"),
    "train-val-fraction-1": C("train", "proteins", "--val-fraction", "1", "--out", E, text="--val-fraction"),
    "train-network": C("train", "proteins", "--network", "huge", "--out", E, text="--network"),
    # ---- inputs: missing, unreadable, contradictory
    "gen-checkpoint-missing": C("generate", "proteins", *GEN, "--checkpoint", "{root}/nope.ckpt", "--out", E,
                                text="checkpoint not found"),
    "gen-fasta-missing": C("generate", "proteins", *GEN, "--mode", "forward-folding", "--sequence-in",
                           "{root}/nope.fasta", "--out", E, text="nope.fasta"),
    "gen-fasta-headerless": C("generate", "proteins", *GEN, "--mode", "forward-folding", "--sequence-in",
                              "{headerless_fasta}", "--out", E, text="not a FASTA file"),
    "gen-fasta-empty": C("generate", "proteins", *GEN, "--mode", "forward-folding", "--sequence-in",
                         "{empty_fasta}", "--out", E, text="empty.fasta"),
    "gen-both-inputs": C("generate", "proteins", *GEN, "--mode", "forward-folding", "--sequence-in", "{good_fasta}",
                         "--structure-in", "{good_fasta}", "--out", E, text="not both"),
    "gen-inverse-folding-without-structures": C("generate", "proteins", *GEN, "--mode", "inverse-folding",
                                                "--out", E, text="--structure-in"),
    "gen-device": C("generate", "proteins", *GEN, "--device", "cuda:99", "--out", E, text="cuda:99"),
    "score-missing-input": C("score", "proteins", "{root}/nope", "--quiet", "--out", E, text="input not found"),
    "train-dataset-missing": C("train", "proteins", *TRAIN, "--dataset", "{root}/missing.npz", "--out", E,
                               text="missing.npz"),
    # ---- model files: malicious pickles are never unpickled
    "gen-checkpoint-raw-pickle": C("generate", "proteins", *GEN, "--checkpoint", "{evil_ckpt}", "--out", E,
                                   text="evil.ckpt"),
    "gen-checkpoint-pickle-safetensors": C("generate", "proteins", *GEN, "--checkpoint", "{evil_safetensors}",
                                           "--out", E, text="evil.safetensors"),
    "gen-checkpoint-zip-pickle": C("generate", "proteins", *GEN, "--checkpoint", "{evil_zip_ckpt}", "--out", E,
                                   text="evil_zip.ckpt"),
    # ---- output folders: a file, under a file, another run, locked
    "gen-out-is-file": C("generate", "proteins", *GEN, "--out", "{afile}", text="is a file"),
    "gen-out-under-file": C("generate", "proteins", *GEN, "--out", "{afile}/sub", text="cannot create"),
    "score-out-is-file": C("score", "proteins", "{gen_run}/pdb", "--quiet", "--out", "{afile}", text="is a file"),
    "train-out-is-file": C("train", "proteins", *TRAIN, "--out", "{afile}", text="is a file"),
    "gen-into-gen-run-other-seed": C("generate", "proteins", *GEN, "--seed", "1", "--out", "{gen_run}",
                                     text="holds a generate-proteins run"),
    "score-into-gen-run": C("score", "proteins", "{gen_run}/pdb", "--quiet", "--out", "{gen_run}",
                            text="holds a generate-proteins run"),
    "crystals-into-gen-run": C("generate", "crystals", "-n", "1", "--steps", "2", *QUIET, "--out", "{gen_run}",
                               text="holds a generate-proteins run"),
    "gen-locked-run": C("generate", "proteins", *GEN, "--out", "{gen_run}", text="another genmatch process",
                        prepare=hold_lock("gen_run")),
    **FILE_ERRORS,
    **DESIGN_ERRORS,  # generate proteins with design conditions (issue 24): bad_input_protein_conditions.py
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_bad_protein_input_exits_2_and_changes_nothing(name: str, corpus: Corpus, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    check_refusal(ERRORS[name], corpus, tmp_path, capsys)


def test_the_same_command_resumes_a_finished_protein_run_unchanged(corpus: Corpus,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The counterpart of the refusals: the same command into its finished run changes no file."""
    out = corpus["gen_run"]
    before = {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"}
    assert main(["generate", "proteins", *GEN, "--out", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert {k: v for k, v in snapshot(out).items() if k != ".genmatch.lock"} == before
    assert sorted(p.name for p in (out / "pdb").iterdir()) == ["length_50_0000.pdb"]


def test_the_protein_corpus_pickles_are_live(corpus: Corpus, tmp_path: Path) -> None:
    """The raw pickle of the corpus really would run code if unpickled: the marker check is not vacuous."""
    marker = tmp_path / "marker"
    pickle.loads(evil_pickle(marker))
    assert marker.exists()
    assert not Path(corpus.paths["marker"]).exists()


def test_corpus_size() -> None:
    assert len(ERRORS) + len(ROWS) >= 60


# ---------------------------------------------------------------- per-item problems: a row, the batch goes on

SCORE = ["--mpnn-sequences", "1", "--reference", "none", "--no-cache", "--no-plots", *QUIET]
ROWS = {**{name.split(".")[0]: text for name, text in BAD_STRUCTURES.values()}, **SPECIAL}  # id -> its reason
NOT_UTF8 = safe_id(os.fsdecode(b"caf\xe9"))
GOOD = ["good_a", "good_b", "mse", NOT_UTF8]


@pytest.fixture(scope="module")
def mixed(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, pd.DataFrame]:
    """``score proteins`` of the folder that mixes good files with each bad kind: exit code, stderr, scores.csv.
    It must finish (a fifo opened for reading would block it) and leave the folder unchanged."""
    out = tmp_path_factory.mktemp("mixed") / "out"
    before = snapshot(corpus["mix"])
    err, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        rc = finishes(lambda: main(["score", "proteins", str(corpus["mix"]), *SCORE, "--out", str(out)]), 240)
    assert snapshot(corpus["mix"]) == before
    return rc, err.getvalue(), pd.read_csv(out / "scores.csv", keep_default_na=False)


@pytest.mark.parametrize("ident", list(ROWS))
def test_a_bad_entry_in_a_folder_is_one_failed_row(ident: str, mixed: tuple[int, str, pd.DataFrame]) -> None:
    rc, err, table = mixed
    assert rc == 0, err
    row = table[table["id"] == ident]
    assert len(row) == 1 and row["status"].iloc[0] == "failed", table[["id", "status"]]
    assert ROWS[ident] in row["problem"].iloc[0], row["problem"].iloc[0]


def test_the_good_entries_of_a_mixed_folder_are_scored(mixed: tuple[int, str, pd.DataFrame]) -> None:
    """The good files (one with MSE, read as MET and warned as one line; one with a non-UTF-8 name) are scored,
    and the table holds exactly one row per entry."""
    rc, err, table = mixed
    assert rc == 0 and "Traceback" not in err, err
    assert sorted(table["id"]) == sorted([*ROWS, *GOOD])
    assert set(table.loc[table["status"] == "scored", "id"]) == set(GOOD)
    assert table.loc[table["status"] == "scored", "length"].astype(float).eq(45).all()
    assert all(line.startswith("genmatch: warning: ") for line in err.strip().splitlines()), err
    assert any("mse.pdb: chain A: MSE read as MET (1 residue)" in line for line in err.splitlines()), err


# --------------------------------------------------------------------------------------------- names

def test_unsafe_and_non_utf8_names_become_safe_ids(corpus: Corpus, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Inverse folding of a folder holding a non-UTF-8 file name, and folding of a FASTA record named 'a/b c':
    the runs finish with their CSV and FASTA, every output named by a safe id inside OUT."""
    src = tmp_path / "in"
    src.mkdir()
    good = corpus["good_pdb"].read_bytes()
    (src / "plain.pdb").write_bytes(good)
    with open(os.path.join(os.fsencode(src), b"caf\xe9.pdb"), "wb") as f:
        f.write(good)
    out = tmp_path / "inverse"
    assert main(["generate", "proteins", "--mode", "inverse-folding", "--structure-in", str(src), *GEN,
                 "--out", str(out)]) == 0, capsys.readouterr().err
    ids = [safe_id(os.fsdecode(b"caf\xe9") + "_A") + "_0000", "plain_A_0000"]
    assert sorted(pd.read_csv(out / "manifest.csv")["id"]) == ids
    assert sorted(p.name for p in (out / "pdb").iterdir()) == [f"{i}.pdb" for i in ids]
    assert (out / "samples.fasta").read_text().count(">") == 2
    (tmp_path / "named.fasta").write_text(">a/b c\nMKVLAAGIVALLLAAGCSS\n>../up\nMKVLAAGIVA\n")
    out = tmp_path / "folding"
    assert main(["generate", "proteins", "--mode", "forward-folding", "--sequence-in", str(tmp_path / "named.fasta"),
                 *GEN, "--out", str(out)]) == 0, capsys.readouterr().err
    names = sorted(p.name for p in (out / "pdb").iterdir())
    assert names == sorted(f"{safe_id(n)}_0000.pdb" for n in ("a/b", "../up")) and not (tmp_path / "up_0000.pdb").exists()
    assert all(n.isascii() and "/" not in n and not n.startswith(".") for n in names)


def test_names_given_in_python_become_safe_ids(tmp_path: Path) -> None:
    """Dict keys and chain names passed to workflows.proteins.generate name output files through safe_id: a key
    holding '/' or '..' cannot write outside OUT; a safe key is kept as it is."""
    from workflows import proteins

    seqs = {"../../escape": "MKVLAAGIVA", "dir/name": "GGSAAKLLVE", "plain": "MKVLAAGIVA"}
    config = proteins.ProteinGenerateConfig(sequence_in=seqs, per_length=1, steps=2)
    with pytest.warns(UserWarning, match="length 10 is outside"):
        gen = proteins.generate(config, out_dir=tmp_path / "out", threads=1, progress=False)
    assert sorted(gen.ids) == sorted(f"{safe_id(k)}_0000" for k in seqs) and "plain_0000" in gen.ids
    assert sorted(p.name for p in (tmp_path / "out" / "pdb").iterdir()) == sorted(f"{i}.pdb" for i in gen.ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
