"""``genmatch generate proteins`` on the fixture-sized network (MultiFlow's small config, its fixture weights saved
as a genmatch safetensors checkpoint): every mode and rotation generator from the command line, resume
byte-identical, thread-count independence, exit 2 for bad input, ``--checkpoint`` as the old name of ``--model``,
and the one-line warning for lengths outside the model's training range."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.proteins.network import ProteinNetwork, ProteinNetworkConfig
from pipeline.proteins.network.checkpoint import save_protein_checkpoint
from helpers import fixture_path
from structures.proteins.io import read_chain
from workflows.cli import main

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling CI

BASE = ["generate", "proteins", "--lengths", "7,11", "--per-length", "2", "--steps", "5", "--quiet",
        "--residue-budget", "25", "--threads", "1"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    folder = fixture_path("multiflow")
    doc = yaml.safe_load((folder / "multiflow_small_config.yaml").read_text())
    net = ProteinNetwork(ProteinNetworkConfig.from_multiflow(doc["model"]), init=False)
    net.load_state_dict({k: v.float() for k, v in load_file(str(folder / "multiflow_small_state_dict.safetensors")).items()})
    return save_protein_checkpoint(tmp_path_factory.mktemp("ckpt") / "fixture.safetensors", net)


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", ".genmatch.lock") and "batches" not in p.parts}


@pytest.mark.parametrize("rotations", ["flow", "jump", "superposition"])
def test_codesign_each_rotation_generator(ckpt, tmp_path, rotations):
    out = tmp_path / "out"
    assert main(BASE + ["--model", str(ckpt), "--rotations", rotations, "--out", str(out)]) == 0
    fasta = (out / "samples.fasta").read_text().split("\n")
    assert len(fasta) == 9 and all(len(s) in (7, 11) and "X" not in s for s in fasta[1:8:2])
    chain = read_chain(out / "pdb" / "length_11_0001.pdb")
    assert len(chain) == 11 and chain.atom_mask.all() and chain.sequence == fasta[7]
    assert (out / "manifest.csv").read_text().count("\n") == 5


def test_structure_folding_and_inverse_folding(ckpt, tmp_path):
    cd = tmp_path / "cd"
    assert main(BASE + ["--model", str(ckpt), "--mode", "structure", "--sequence", "ko", "--out", str(cd)]) == 0
    fasta = tmp_path / "in.fasta"
    fasta.write_text(">a\nMKTAYIAK\n>b\nGSHMLEEVK\n")
    ff = tmp_path / "ff"
    assert main(BASE + ["--model", str(ckpt), "--mode", "forward-folding", "--sequence-in", str(fasta),
                        "--out", str(ff)]) == 0
    assert read_chain(ff / "pdb" / "b_0001.pdb").sequence == "GSHMLEEVK"
    inv = tmp_path / "inv"
    pdb = cd / "pdb" / "length_11_0000.pdb"
    assert main(BASE + ["--model", str(ckpt), "--mode", "inverse-folding", "--structure-in", str(pdb),
                        "--sequence", "ko", "--scheduler", "cubic", "--out", str(inv)]) == 0
    given, designed = read_chain(pdb), read_chain(next((inv / "pdb").glob("*.pdb")))
    assert abs(given.coords[:, 1] - given.coords[:, 1].mean(0) - designed.coords[:, 1]).max() <= 2e-3
    assert "X" not in designed.sequence


def test_resume_is_byte_identical_and_threads_do_not_matter(ckpt, tmp_path):
    args = BASE + ["--model", str(ckpt), "--rotations", "superposition", "--trajectory"]
    full = tmp_path / "full"
    assert main(args + ["--out", str(full)]) == 0
    part = tmp_path / "part"
    shutil.copytree(full, part)
    (part / "batches" / "00001.json").unlink()  # as if killed after batch 0 and 2
    for f in ("manifest.csv", "samples.fasta", "pdb/length_7_0000.pdb"):
        (part / f).unlink(missing_ok=True)
    assert main(args + ["--out", str(part)]) == 0
    assert _files(part) == _files(full)
    two = tmp_path / "two"
    assert main([a if a != "1" else "2" for a in args] + ["--out", str(two)]) == 0  # --threads 2
    assert _files(two) == _files(full)


@pytest.mark.parametrize("extra", [[], ["--lengths", "0"], ["--mode", "forward-folding"], ["--jump-weight", "2"],
                                   ["--steps", "1"], ["--sequence-in", "/nonexistent.fasta", "--mode", "folding"]])
def test_bad_input_exits_2(ckpt, tmp_path, capsys, extra, monkeypatch):
    from pipeline.proteins.network import checkpoint as protein_checkpoint

    monkeypatch.delenv("GENMATCH_MULTIFLOW_CKPT", raising=False)
    # no --model, no environment variable and no shipped model: exit 2, nothing written
    monkeypatch.setattr(protein_checkpoint, "SHIPPED_PROTEIN_MODEL", tmp_path / "missing.safetensors")
    args = BASE + ["--out", str(tmp_path / "o")] + extra
    if extra:
        args += ["--model", str(ckpt)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()
    if not extra:
        assert "no protein model" in err[0]


def test_checkpoint_is_the_old_name_of_model(ckpt, tmp_path):
    """``--checkpoint PATH`` (deprecated) still works and gives the files of ``--model PATH``."""
    new, old = tmp_path / "new", tmp_path / "old"
    assert main(BASE + ["--model", str(ckpt), "--out", str(new)]) == 0
    assert main(BASE + ["--checkpoint", str(ckpt), "--out", str(old)]) == 0
    assert _files(old) == _files(new) and len([f for f in _files(new) if f.startswith("pdb/")]) == 4


def test_lengths_outside_the_training_range_warn_once_on_one_line(tmp_path, capsys):
    """The shipped model was trained on 60-128 residues: 12 and 200 are named in one stderr line, 60 is not;
    the run still completes."""
    out = tmp_path / "o"
    assert main(["generate", "proteins", "--lengths", "12,60,200", "--per-length", "1", "--steps", "2", "--quiet",
                 "--threads", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("genmatch: warning: lengths 12, 200 are outside the 60-128 residues"), err[0]
    assert len(list((out / "pdb").glob("*.pdb"))) == 3


def test_the_shipped_model_is_the_default(tmp_path, capsys, monkeypatch):
    from pipeline.proteins.network.checkpoint import SHIPPED_PROTEIN_MODEL, default_protein_checkpoint

    monkeypatch.delenv("GENMATCH_MULTIFLOW_CKPT", raising=False)
    assert default_protein_checkpoint() == SHIPPED_PROTEIN_MODEL and SHIPPED_PROTEIN_MODEL.is_file()
    out = tmp_path / "o"
    assert main(["generate", "proteins", "--lengths", "12", "--per-length", "2", "--steps", "5", "--quiet",
                 "--threads", "1", "--out", str(out)]) == 0
    assert len(list((out / "pdb").glob("*.pdb"))) == 2


def test_bf16_precision_runs_close_to_fp32_and_is_recorded(tmp_path):
    """--precision bf16 (autocast) on the shipped trained model: recorded in the run settings; one network call
    stays within 1 A / 0.1 / 0.05 of the fp32 call (translations, rotation entries, amino-acid probabilities; the
    logits reach |131| with the re-shipped model, where bf16's relative rounding is ~1 %) but is not fp32."""
    import json

    from manifolds import so3
    from pipeline.proteins.network.checkpoint import default_protein_checkpoint, load_protein_network
    from pipeline.proteins.network.model import ProteinNetworkInput
    from structures.errors import InputError
    from workflows.proteins import ProteinGenerateConfig

    with pytest.raises(InputError, match=r"ProteinGenerateConfig\.precision must be one of fp32, bf16"):
        ProteinGenerateConfig(precision="fp16")
    out = tmp_path / "bf"
    assert main(BASE + ["--precision", "bf16", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["sampler"]["precision"] == "bf16"
    net = load_protein_network(default_protein_checkpoint())
    g = torch.Generator().manual_seed(0)
    b, n = 2, 40
    inp = ProteinNetworkInput(trans=torch.randn(b, n, 3, generator=g) * 10, rotmats=so3.uniform((b, n), rng=g),
                              aatypes=torch.randint(0, 21, (b, n), generator=g), res_mask=torch.ones(b, n),
                              so3_t=torch.full((b, 1), 0.5), r3_t=torch.full((b, 1), 0.5), cat_t=torch.full((b, 1), 0.5))
    with torch.no_grad():
        a, c = net.predict(inp), net.predict(inp, bf16=True)
    d = [float((getattr(a, k) - getattr(c, k)).abs().max()) for k in ("pred_trans", "pred_rotmats")]
    d.append(float((a.pred_logits.softmax(-1) - c.pred_logits.softmax(-1)).abs().max()))  # measured 0.003
    assert 0 < d[0] < 1.0 and d[1] < 0.1 and d[2] < 0.05, d
