"""``genmatch generate proteins`` designing (issue 24, item 7) with the shipped protein_small model, 3 steps, 1
thread: motif scaffolding of a 10-residue motif cut from a real chain (the motif's amino acids kept, cysteine
forbidden, each sample's contig draw and motif placement in the manifest), the same run through the Python API,
reproducible per-sample draws, refinement of a real chain from t0 = 0.9, and sequence constraints in inverse
folding; the amortised motif method (issue 24) with a motif-capable model made here (the shipped network with its
zero-initialised motif input, :meth:`ProteinNetwork.with_motif_input`) and its refusal for a model without one.
The other refusals are ``bad_input_protein_conditions.py``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.proteins.conditions import ProteinConditions, plan_inputs
from pipeline.proteins.network.checkpoint import load_protein_model, save_protein_checkpoint
from pipeline.proteins.replacement import MOTIF_METHODS
from pipeline.proteins.score.folding import kabsch_rmsd
from structures.data import load_proteins
from structures.errors import InputError
from structures.proteins.frames import backbone_from_frames, frames_from_atoms
from structures.proteins.io import BackboneChain, read_chain, write_structure
from workflows import proteins
from workflows.cli import main

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling CI

RUN = ["--steps", "3", "--threads", "1", "--quiet"]
CONTIG = "20-30/A11-20/20-30"  # 50-70 residues, inside the 60-128 the model was trained on with --length
LENGTH = "60-70"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``motif.pdb``: residues 11-20 (author numbers) of a real chain, alone; ``chain.pdb``: that chain's first 64
    residues (to refine)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("design")
    chain = next(c for c in load_proteins() if len(c.sequence) >= 64 and "C" not in c.sequence[10:20]
                 and "X" not in c.sequence[:64])
    motif = BackboneChain.from_coords(np.asarray(chain.coords[10:20]), chain.sequence[10:20], name="motif")
    write_structure(root / "motif.pdb", replace(motif, res_ids=np.arange(11, 21)))
    write_structure(root / "chain.pdb", BackboneChain.from_coords(np.asarray(chain.coords[:64]),
                                                                  chain.sequence[:64], name="chain"))
    return {"motif": root / "motif.pdb", "chain": root / "chain.pdb", "root": root}


@pytest.fixture(scope="module")
def scaffolds(files: dict[str, Path]) -> Path:
    out = files["root"] / "scaffolds"
    argv = ["generate", "proteins", "--motif", str(files["motif"]), "--contig", CONTIG, "--length", LENGTH,
            "--motif-sequence", "--forbid", "C", "--per-length", "3", *RUN, "--out", str(out)]
    assert main(argv) == 0
    return out


def test_motif_scaffolds_keep_the_motif_and_its_sequence(files: dict[str, Path], scaffolds: Path) -> None:
    motif = read_chain(files["motif"])
    rows = json.loads((scaffolds / "manifest.json").read_text())["rows"]
    assert len(rows) == 3
    for row in rows:
        chain = read_chain(scaffolds / row["file"])
        assert 60 <= len(chain) <= 70 and len(chain) == row["length"] == row["contig"]["length"]
        assert "C" not in chain.sequence and chain.sequence == row["sequence"]
        at = [p["position"] - 1 for p in row["motif_placement"]]
        assert [p["residue"] for p in row["motif_placement"]] == [f"A{i}" for i in range(11, 21)]
        assert at == list(range(at[0], at[0] + 10)) and at[0] == int(row["contig"]["draw"].split("/")[0])
        assert "".join(chain.sequence[k] for k in at) == motif.sequence  # --motif-sequence
        ca = np.asarray(chain.coords)[at, 1]
        assert kabsch_rmsd(ca, np.asarray(motif.coords)[:, 1]) < 1e-2  # the motif's frames, up to a rigid motion
    settings = json.loads((scaffolds / "run.json").read_text())
    assert "A11-20:seq" in json.dumps(settings) and '"forbid": "C"' in json.dumps(settings)


def test_the_same_command_resumes_the_finished_design_run_unchanged(files: dict[str, Path], scaffolds: Path) -> None:
    before = {p: p.read_bytes() for p in scaffolds.rglob("*") if p.is_file() and p.name != ".genmatch.lock"}
    assert main(["generate", "proteins", "--motif", str(files["motif"]), "--contig", CONTIG, "--length", LENGTH,
                 "--motif-sequence", "--forbid", "C", "--per-length", "3", *RUN, "--out", str(scaffolds)]) == 0
    assert {p: p.read_bytes() for p in scaffolds.rglob("*") if p.is_file() and p.name != ".genmatch.lock"} == before


def test_conditions_in_python_are_checked_against_the_run(files: dict[str, Path]) -> None:
    from structures.errors import InputError

    with pytest.raises(InputError, match="conditions must be a ProteinConditions"):
        proteins.ProteinGenerateConfig(conditions="motif.pdb")
    with pytest.raises(InputError, match="lengths: motif sets the chain lengths"):
        proteins.ProteinGenerateConfig(lengths=(60,), conditions={"motif": files["motif"], "contig": CONTIG})
    with pytest.raises(InputError, match="ProteinConditions.fix: residue A21 is not a motif residue"):
        proteins.ProteinConditions(motif=files["motif"], contig=CONTIG, fix={"A21": "W"})


def test_the_python_api_makes_the_same_scaffolds(files: dict[str, Path], scaffolds: Path) -> None:
    cond = {"motif": files["motif"], "contig": CONTIG, "length": LENGTH, "motif_sequence": True, "forbid": "C"}
    gen = proteins.generate(conditions=cond, per_length=3, steps=3, threads=1, progress=False)
    fasta = (scaffolds / "samples.fasta").read_text().splitlines()[1::2]
    assert gen.ids == [f"motif_{i:04d}" for i in range(3)] and gen.sequences == fasta


def test_contig_draws_depend_on_the_run_seed_and_the_sample_index(files: dict[str, Path]) -> None:
    cond = ProteinConditions(motif=files["motif"], contig="0-40/A11-20/0-40")
    draws = {s: [str(p.draw) for p in plan_inputs((), 12, s, None, cond)[1].placements] for s in (0, 1)}
    assert draws[0] == [str(p.draw) for p in plan_inputs((), 12, 0, None, cond)[1].placements]
    assert draws[0] != draws[1] and len(set(draws[0])) > 1
    assert draws[0][:5] == [str(p.draw) for p in plan_inputs((), 5, 0, None, cond)[1].placements]


def test_refinement_from_a_real_chain(files: dict[str, Path]) -> None:
    out = files["root"] / "refined"
    assert main(["generate", "proteins", "--refine", str(files["chain"]), "--start-time", "0.9", "--fix", "A3=W",
                 "--per-length", "2", *RUN, "--out", str(out)]) == 0
    rows = json.loads((out / "manifest.json").read_text())
    assert rows["summary"]["settings"]["sampler"]["start_time"] == 0.9
    given = read_chain(files["chain"])
    for row in rows["rows"]:
        chain = read_chain(out / row["file"])
        assert len(chain) == 64 and chain.sequence[2] == "W"
        assert kabsch_rmsd(np.asarray(chain.coords)[:, 1], np.asarray(given.coords)[:, 1]) < 3.0  # ~0.7 A measured


def test_inverse_folding_with_fixed_and_forbidden_amino_acids(files: dict[str, Path]) -> None:
    """Sequence constraints apply in inverse folding too (positions of the designed chain, 1-based)."""
    cond = proteins.ProteinConditions(fix="1=W,64=Y", forbid="C,A,L", allowed="2=DE")
    gen = proteins.generate(structure_in=files["chain"], conditions=cond, per_length=2, steps=3, threads=1,
                            progress=False)
    for seq in gen.sequences:
        assert len(seq) == 64 and seq[0] == "W" and seq[-1] == "Y" and seq[1] in "DE"
        assert not set(seq) & set("CAL")


# ------------------------------------------------------------------------------------------ amortised (issue 24)


@pytest.fixture(scope="module")
def motif_model(files: dict[str, Path]) -> Path:
    """The shipped protein_small network with a zero-initialised motif input (it predicts as protein_small does),
    saved with protein_small's record (steps, trained lengths) as a genmatch .safetensors that ``--model`` reads."""
    shipped = load_protein_model("protein_small")
    path = files["root"] / "motif_small.safetensors"
    save_protein_checkpoint(path, shipped.net.with_motif_input(), shipped.info)
    return path


def test_amortised_scaffolds_hold_the_motif_exactly(files: dict[str, Path], motif_model: Path) -> None:
    """With ``--motif-method amortised`` the motif residues are held clean from the first step: their backbone is
    the motif's (idealised from its frames, as every written backbone is) up to a rigid motion, to < 1e-3 A."""
    out = files["root"] / "amortised"
    assert main(["generate", "proteins", "--model", str(motif_model), "--motif", str(files["motif"]), "--contig",
                 CONTIG, "--length", LENGTH, "--motif-method", "amortised", "--per-length", "2", "--steps", "5",
                 "--threads", "1", "--quiet", "--out", str(out)]) == 0
    motif = np.asarray(read_chain(files["motif"]).coords)  # [10, 4, 3]
    ideal = backbone_from_frames(frames_from_atoms(torch.from_numpy(motif))).numpy()  # [10, 4, 3]: N, CA, C, O
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["settings"]["generation"]["conditions"]["motif_method"] == "amortised"
    assert '"motif_method": "amortised"' in (out / "run.json").read_text()
    assert len(manifest["rows"]) == 2
    for row in manifest["rows"]:
        x = np.asarray(read_chain(out / row["file"]).coords)
        at = [p["position"] - 1 for p in row["motif_placement"]]
        assert len(x) == row["length"] and 60 <= len(x) <= 70 and len(at) == 10
        assert kabsch_rmsd(x[at, 1], motif[:, 1]) < 1e-3  # CA
        assert kabsch_rmsd(x[at, :3].reshape(-1, 3), ideal[:, :3].reshape(-1, 3)) < 1e-3  # N, CA, C


def test_amortised_needs_a_model_with_a_motif_input(files: dict[str, Path], tmp_path: Path) -> None:
    """From Python too: a model without a motif input (protein_small without it) is refused naming the argument,
    before any folder."""
    from helpers import plain_protein_model

    plain = plain_protein_model(tmp_path / "plain.safetensors")
    cond = ProteinConditions(motif=files["motif"], contig=CONTIG, length=LENGTH, motif_method="amortised")
    for out_dir in (tmp_path / "run", None):
        with pytest.raises(InputError, match=r"ProteinConditions\.motif_method .*'amortised' needs a model trained "
                           r"with motif masks .*--motif-prob.*plain\.safetensors.* 'replacement', which works with"):
            proteins.generate(conditions=cond, model=plain, per_length=1, steps=3, threads=1, progress=False,
                              out_dir=out_dir)
    assert not (tmp_path / "run").exists()


def test_guided_scaffolds_hold_the_motif_and_record_their_strength(files: dict[str, Path]) -> None:
    """``--motif-method guided --motif-guidance 8`` (replacement plus reconstruction guidance, any model): the motif
    comes out exact up to a rigid motion and the run records the method and its strength; from Python a strength
    without the method is refused naming the field."""
    out = files["root"] / "guided"
    assert main(["generate", "proteins", "--motif", str(files["motif"]), "--contig", CONTIG, "--length", LENGTH,
                 "--motif-method", "guided", "--motif-guidance", "8", "--per-length", "1", "--steps", "4",
                 "--threads", "1", "--quiet", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    conditions = manifest["summary"]["settings"]["generation"]["conditions"]
    assert conditions["motif_method"] == "guided" and conditions["motif_guidance"] == 8.0
    motif = np.asarray(read_chain(files["motif"]).coords)  # [10, 4, 3]
    row = manifest["rows"][0]
    x = np.asarray(read_chain(out / row["file"]).coords)
    assert kabsch_rmsd(x[[p["position"] - 1 for p in row["motif_placement"]], 1], motif[:, 1]) < 1e-3
    with pytest.raises(InputError, match=r"ProteinConditions\.motif_guidance is the strength of motif_method "
                       "'guided'"):
        ProteinConditions(motif=files["motif"], contig=CONTIG, length=LENGTH, motif_guidance=4.0)
    with pytest.raises(InputError, match=r"ProteinConditions\.motif_guidance must be a finite number >= 0"):
        ProteinConditions(motif=files["motif"], contig=CONTIG, length=LENGTH, motif_method="guided",
                          motif_guidance=-1.0)


def test_the_motif_methods_of_the_command_line_are_the_samplers(capsys: pytest.CaptureFixture[str]) -> None:
    """``--motif-method`` takes exactly MOTIF_METHODS (checked when parsed; the help imports no torch) and its help
    names each, with what amortised needs."""
    import argparse

    from workflows.cli.proteins import motif_method

    assert [motif_method(m) for m in MOTIF_METHODS] == list(MOTIF_METHODS) and "amortised" in MOTIF_METHODS
    with pytest.raises(argparse.ArgumentTypeError, match="invalid choice: 'glue' .*'amortised'"):
        motif_method("glue")
    assert main(["generate", "proteins", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(m in text for m in MOTIF_METHODS)
    assert "works with any model" in text and "--motif-prob" in text
