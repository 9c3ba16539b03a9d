"""The bad-input corpus for proteins (issue 11): ``generate / score / train proteins``, every kind of bad input,
through the real command line. The contract and the shared helpers are in ``bad_input_corpus.py``: exit code
2, one stderr line naming the problem, no traceback, the output folder and the inputs byte for byte unchanged,
no malicious pickle executed."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared corpus module, imported by its plain name
from bad_input_corpus import C, Case, Corpus, check_refusal, evil_pickle, hold_lock, snapshot  # noqa: E402

from workflows.cli import main  # noqa: E402

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
    return c


E = "{OUT}"
ERRORS: dict[str, Case] = {  # name -> case
    # ---- options: out of range or unknown, refused at parse time
    "gen-lengths-0": C("generate", "proteins", "--lengths", "0", "--out", E, text="--lengths"),
    "gen-lengths-text": C("generate", "proteins", "--lengths", "fifty", "--out", E, text="--lengths"),
    "gen-per-length-0": C("generate", "proteins", "--per-length", "0", "--out", E, text="--per-length"),
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
