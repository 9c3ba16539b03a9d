"""Protein requests the machine cannot hold, and everything checked before a run folder opens (issue 25, items 2 and 3).

Through the real command line (:func:`workflows.cli.main`, in-process): lengths and batches whose memory estimate
exceeds the limit, ``--device`` values checked at parse time, an unreachable ``--dask-scheduler``, model files with
NaN weights (protein and crystal models share the loader), and ESMFold folders that are unsafe or incomplete. Each
refusal is exit 2 with one stderr line and nothing created in ``--out`` (the contract of ``bad_input_corpus.py``);
every refusal happens before any sampling or scoring, so the cases are fast.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the shared corpus module, imported by its plain name
from bad_input_corpus import C, Case, Corpus, check_refusal, closed_scheduler, evil_pickle  # noqa: E402
from bad_input_protein_files import with_nan  # noqa: E402

from pipeline.common.model_file import ModelFile, load_model_file, save_model_file  # noqa: E402
from structures.errors import InputError  # noqa: E402

QUIET = ["--quiet", "--threads", "1"]
GEN = ["--per-length", "1", "--steps", "2", *QUIET]
SCORE = ["--mpnn-sequences", "1", "--reference", "none", "--no-cache", "--no-plots", *QUIET]

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling CI


def _tiny_esmfold(path: Path) -> Path:
    """The tiny random ESMFold of the scorer's tests (one definition, loaded from its file)."""
    src = Path(__file__).parents[1] / "pipeline" / "proteins" / "test_score.py"
    spec = importlib.util.spec_from_file_location("_score_tests_for_limits", src)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.tiny_esmfold(path)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """PDBs to score, model files with a NaN weight, and ESMFold folders: good, pickled (malicious), weightless,
    with a broken config."""
    from pipeline.crystals.flow import resolve_model_path
    from pipeline.proteins.network.checkpoint import SHIPPED_PROTEIN_MODEL
    from structures.data import load_proteins
    from structures.proteins.io import BackboneChain, write_structure

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("limits")
    c = Corpus(root)
    c.paths["marker"] = str(root / "MARKER")
    proteins = load_proteins()
    for name, which in (("pdbs", (3,)), ("train_pdbs", (3, 11, 25, 40))):
        d = root / name
        d.mkdir()
        for i in which:
            chain = proteins[i]
            write_structure(d / f"{chain.name}.pdb",
                            BackboneChain.from_coords(chain.coords[:45], chain.sequence[:45], name=chain.name))
        c.paths[name] = str(d)
    c.paths["nan_protein"] = str(with_nan(SHIPPED_PROTEIN_MODEL, root / "nan_protein.safetensors"))
    c.paths["nan_crystal"] = str(with_nan(resolve_model_path("perov_5"), root / "nan_crystal.safetensors"))
    good = _tiny_esmfold(root / "esm_good")
    c.paths["esm_good"] = str(good)
    config = (good / "config.json").read_text()
    for name, files in {"esm_pickle": {"pytorch_model.bin": evil_pickle(root / "MARKER")},
                        "esm_no_weights": {},
                        "esm_bad_config": {"model.safetensors": (good / "model.safetensors").read_bytes()},
                        "esm_bad_safetensors": {"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage"}
                        }.items():
        d = root / name
        d.mkdir()
        (d / "config.json").write_text("{not json" if name == "esm_bad_config" else config)
        for fname, blob in files.items():
            (d / fname).write_bytes(blob)
        c.paths[name] = str(d)
    c.paths["closed"] = closed_scheduler()
    return c


E = "{OUT}"
LIMITS: dict[str, Case] = {
    # ---- memory: refused from the estimate, before sampling, naming the option that changes the limit
    "gen-5000-residues-in-8gb": C("generate", "proteins", "--lengths", "5000", *GEN, "--max-memory-gb", "8",
                                  "--out", E, text="--max-memory-gb"),
    "gen-100000-residues": C("generate", "proteins", "--lengths", "100000", *GEN, "--out", E,
                             text="100000 residues needs about"),
    "gen-batch-over-limit": C("generate", "proteins", "--lengths", "200", "--per-length", "10", "--steps", "2",
                              *QUIET, "--max-memory-gb", "0.2", "--out", E, text="--residue-budget"),
    "train-over-limit": C("train", "proteins", "--dataset", "{train_pdbs}", "--min-length", "40", "--max-length", "100",
                          "--val-fraction", "0.25", "--max-steps", "1", *QUIET, "--max-memory-gb", "0.1", "--out", E,
                          text="train: batches of chains up to 45 residues needs about"),
    "gen-max-memory-0": C("generate", "proteins", "--max-memory-gb", "0", "--out", E, text="--max-memory-gb"),
    "score-esmfold-over-limit": C("score", "proteins", "{pdbs}", "--esmfold", "{esm_good}", *SCORE,
                                  "--max-memory-gb", "0.000001", "--out", E, text="folding a chain of 45 residues"),
    # ---- --device, at parse time
    "gen-device-tpu9": C("generate", "proteins", "--device", "tpu9", "--out", E, text="argument --device"),
    "gen-device-cpu-index": C("generate", "proteins", "--device", "cpu:1", "--out", E, text="argument --device"),
    # ---- dask: an unreachable scheduler is refused, never a silent local run
    "score-dask-unreachable": C("score", "proteins", "{pdbs}", "--dask-scheduler", "{closed}", *SCORE, "--out", E,
                                text="no dask scheduler answers"),
    "score-dask-not-an-address": C("score", "proteins", "{pdbs}", "--dask-scheduler", "localhost", *SCORE,
                                   "--out", E, text="not a scheduler address"),
    # ---- model files: NaN weights refused at load, protein and crystal models alike
    "gen-model-nan": C("generate", "proteins", "--model", "{nan_protein}", "--lengths", "50", *GEN, "--out", E,
                       text="NaN or infinite"),
    "gen-crystals-model-nan": C("generate", "crystals", "--model", "{nan_crystal}", "-n", "2", "--steps", "2",
                                *QUIET, "--out", E, text="NaN or infinite"),
    # ---- ESMFold folders, checked before the run folder opens; a pickle is never unpickled
    "score-esmfold-pickle": C("score", "proteins", "{pdbs}", "--esmfold", "{esm_pickle}", *SCORE, "--out", E,
                              text="not a safe weights file"),
    "score-esmfold-no-weights": C("score", "proteins", "{pdbs}", "--esmfold", "{esm_no_weights}", *SCORE,
                                  "--out", E, text="no ESMFold weights"),
    "score-esmfold-bad-config": C("score", "proteins", "{pdbs}", "--esmfold", "{esm_bad_config}", *SCORE,
                                  "--out", E, text="not a JSON model config"),
    "score-esmfold-bad-safetensors": C("score", "proteins", "{pdbs}", "--esmfold", "{esm_bad_safetensors}", *SCORE,
                                       "--out", E, text="not a readable safetensors file"),
}


@pytest.mark.parametrize("name", list(LIMITS))
def test_refused_before_anything_is_created(name: str, corpus: Corpus, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    check_refusal(LIMITS[name], corpus, tmp_path, capsys)


def test_no_message_advises_an_unsafe_load(corpus: Corpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workflows.cli import main

    rc = main(["score", "proteins", corpus.paths["pdbs"], "--esmfold", corpus.paths["esm_pickle"], *SCORE,
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "weights_only" not in err and "trust" not in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused_at_parse_time(corpus: Corpus, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    check_refusal(C("generate", "proteins", "--device", "cuda", "--out", E, text="no CUDA GPU"), corpus, tmp_path,
                  capsys)


def test_safe_esmfold_folders_pass_the_check(corpus: Corpus, tmp_path: Path) -> None:
    """The counterpart: save_pretrained's safetensors folder and a tensors-only torch file are accepted."""
    from pipeline.proteins.score.folding import check_esmfold_folder, check_weight_file

    check_esmfold_folder(Path(corpus.paths["esm_good"]))
    torch.save({"w": torch.ones(3), "nested": {"b": torch.zeros(2, dtype=torch.int64)}}, tmp_path / "plain.bin")
    check_weight_file(tmp_path / "plain.bin")
    with pytest.raises(InputError, match="not a safe weights file"):
        check_weight_file(Path(corpus.paths["esm_pickle"]) / "pytorch_model.bin")
    assert not Path(corpus.paths["marker"]).exists()


def test_infinite_weights_are_refused_by_the_shared_loader(tmp_path: Path) -> None:
    save_model_file(tmp_path / "ok.safetensors", ModelFile({"w": torch.ones(4)}, {}))
    assert load_model_file(tmp_path / "ok.safetensors").state_dict["w"].sum() == 4
    save_model_file(tmp_path / "inf.safetensors", ModelFile({"w": torch.tensor([1.0, float("inf")])}, {}))
    with pytest.raises(InputError, match=r"inf\.safetensors: tensor 'w' holds 1 NaN or infinite"):
        load_model_file(tmp_path / "inf.safetensors")


def test_memory_estimate_scales_with_pairs_and_model() -> None:
    """The estimate grows as B x L^2 and with the network's widths, and sits at the measured sizes (small: about
    1.0 kB per pair; 5,000 residues about 29 GB)."""
    from pipeline.proteins.memory import network_bytes, pair_load
    from pipeline.proteins.network import CONFIGS

    small, big = CONFIGS["small"], CONFIGS["multiflow"]
    assert pair_load([[100, 90], [300]]) == (90_000, 1, 300)
    assert pair_load([[100, 100, 100]]) == (30_000, 3, 100)
    assert 0.9e3 <= network_bytes(small, 1) <= 1.3e3 and 3.6e3 <= network_bytes(big, 1) <= 4.6e3
    assert 25e9 < network_bytes(small, 5000 ** 2) < 35e9
    assert network_bytes(small, 100, training=True) == (small.ipa.num_blocks + 2) * network_bytes(small, 100)


def test_scheduler_check_accepts_a_listening_port() -> None:
    from pipeline.common.parallel import check_scheduler

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        assert check_scheduler(address, timeout_s=2) == address
    with pytest.raises(InputError, match="not a scheduler address"):
        check_scheduler("tcp://host-without-port")


def test_the_esmfold_config_sets_the_folding_estimate(corpus: Corpus) -> None:
    from pipeline.proteins.memory import esmfold_bytes

    folder = Path(corpus.paths["esm_good"])
    cfg = json.loads((folder / "config.json").read_text())
    c_pair, heads = cfg["esmfold_config"]["trunk"]["pairwise_state_dim"], cfg["num_attention_heads"]
    weights = 2 * (folder / "model.safetensors").stat().st_size
    assert esmfold_bytes(folder, 100) == weights + 4 * 100 ** 2 * (8 * c_pair + 2 * heads)
