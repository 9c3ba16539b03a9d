"""benchmarks/motif_scaffolding.py: the 20 seeded motifs (sizes, kinds, cut from chains the shipped model never
trained on), the metrics on hand-made coordinates, tiny end-to-end runs (every method with the shipped model, which
has a motif input; amortised skipped for a model without one; amortised with a motif-capable model made here) and
the refusals of bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import motif_scaffolding as bench

from structures.data import load_proteins
from structures.proteins.contig import parse_contig

SCRIPT = ROOT / "benchmarks" / "motif_scaffolding.py"


@pytest.fixture(scope="module")
def ds():
    return load_proteins()


@pytest.fixture(scope="module")
def motif_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """protein_small with a zero-initialised motif input (:meth:`ProteinNetwork.with_motif_input`), saved with its
    record: a model the amortised method accepts (it predicts as protein_small until trained)."""
    from pipeline.proteins.network.checkpoint import load_protein_model, save_protein_checkpoint

    shipped = load_protein_model("protein_small")
    path = tmp_path_factory.mktemp("models") / "motif_small.safetensors"
    return save_protein_checkpoint(path, shipped.net.with_motif_input(), shipped.info)


def test_twenty_motifs_of_both_kinds_and_sizes_from_unseen_chains(ds) -> None:
    motifs = bench.select_motifs(0, ds=ds)
    assert len(motifs) == 20 and len({m.chain_index for m in motifs}) == 20
    lo, hi = bench.trained_length_range()
    assert (lo, hi) == (60, 128)  # pipeline/models/protein_small.json
    lengths = np.asarray(ds.lengths)
    trained_entries = set(np.asarray(ds.pdb_id)[(lengths >= lo) & (lengths <= hi)].tolist())
    for m in motifs:
        assert len(ds[m.chain_index]) > hi and str(ds.pdb_id[m.chain_index]) not in trained_entries
        assert 10 <= m.size <= 30 and all(e - s + 1 >= 5 for s, e in m.segments)
        assert all(1 <= s <= e <= len(ds[m.chain_index]) for s, e in m.segments)
        spec = parse_contig(m.contig, m.length)
        assert spec.motif_length == m.size and [(g.start, g.end) for g in spec.motif_segments] == list(m.segments)
        assert spec.total_range() == (60, 120)
    kinds = [(m.kind, m.size >= 20) for m in motifs]
    assert all(kinds.count(k) == 5 for k in {(a, b) for a in ("contiguous", "discontiguous") for b in (False, True)})
    assert bench.select_motifs(0, ds=ds) == motifs
    assert bench.select_motifs(1, ds=ds) != motifs


def test_junction_distances_and_continuity_on_a_hand_made_chain() -> None:
    ca = np.zeros((8, 3))
    ca[:, 0] = 3.8 * np.arange(8)  # a straight chain, every CA-CA 3.8 A
    mask = np.array([0, 0, 1, 1, 1, 0, 0, 0], bool)  # junctions 1-2 and 4-5
    np.testing.assert_allclose(bench.junction_distances(ca, mask), [3.8, 3.8])
    assert bench.continuous(bench.junction_distances(ca, mask))
    ca[5:, 0] += 0.3  # the second junction stretched to 4.1 A: outside 3.8 +- 0.25
    np.testing.assert_allclose(bench.junction_distances(ca, mask), [3.8, 4.1])
    assert not bench.continuous(bench.junction_distances(ca, mask))
    assert bench.junction_distances(ca, np.zeros(8, bool)).size == 0  # no motif, no junction


def test_motif_rmsd_is_zero_up_to_a_rigid_motion_and_one_for_a_doubled_square() -> None:
    rng = np.random.default_rng(0)
    motif = rng.normal(size=(6, 4, 3)) * 3
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a proper rotation
    sample = np.zeros((10, 4, 3))
    sample[2:8] = motif @ q.T + np.array([5.0, -2.0, 1.0])
    backbone, ca = bench.motif_rmsd(sample, motif, np.arange(2, 8))
    assert backbone < 1e-6 and ca < 1e-6
    square = np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], float)
    a = np.repeat(square[:, None], 4, axis=1)  # every atom of a residue on its CA
    backbone, ca = bench.motif_rmsd(2 * a, a, np.arange(4))
    assert backbone == pytest.approx(1.0) and ca == pytest.approx(1.0)


def test_clashes_count_motif_scaffold_pairs_separately() -> None:
    ca = np.zeros((6, 3))
    ca[:, 0] = 3.8 * np.arange(6)
    mask = np.array([1, 1, 0, 0, 0, 0], bool)
    assert bench.ca_clashes(ca, mask) == (0, 0)
    ca[5] = ca[0] + [0.0, 2.0, 0.0]  # free residue 5 on motif residue 0
    ca[3] = ca[2] + [0.0, 2.5, 0.0]  # free residues 2 and 3: neighbours, not a clash (|i - j| < 2)
    assert bench.ca_clashes(ca, mask) == (1, 1)
    ca[4] = ca[2] + [0.0, 0.0, 2.0]  # free 2 and free 4: a scaffold-scaffold clash
    assert bench.ca_clashes(ca, mask) == (2, 1)


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "--n must be at least 1"),
    (["--steps", "1"], "--steps must be at least 2"),
    (["--motifs", "21"], "there are 20 motifs"),
    (["--methods", "replacement,glue"], "glue is not one of"),
    (["--methods", "hold", "--amortised-model", "protein_small"], "add amortised to --methods"),
    (["--amortised-model", "/nonexistent/motif.safetensors"], "--amortised-model: model: checkpoint not found"),
    (["--model", "/nonexistent/model.safetensors"], "--model: model: checkpoint not found"),
    (["--esmfold", "/nonexistent/esmfold"], "is not a folder"),
    (["--out", "/nonexistent/folder/x.json"], "must be a file in an existing folder"),
    (["--n", "two"], "invalid int value"),
])
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_an_amortised_model_without_a_motif_input_exits_2(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import plain_protein_model

    plain = plain_protein_model(tmp_path / "plain.safetensors")
    with pytest.raises(SystemExit) as exc:
        bench.parse(["--amortised-model", str(plain)])
    assert exc.value.code == 2 and "plain.safetensors has no motif input" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # amortised alone, and --model cannot do it
        bench.parse(["--model", str(plain), "--methods", "amortised"])
    assert exc.value.code == 2 and "--methods amortised: give --amortised-model PATH" in capsys.readouterr().err
    args = bench.parse(["--model", str(plain)])  # the default methods: amortised skipped, and said so
    assert args.methods == ("replacement", "hold", "guided")
    assert args.skipped == {"amortised": bench.NO_AMORTISED_MODEL}
    args = bench.parse([])  # the shipped model has a motif input: it is the amortised model too
    assert args.methods == bench.METHODS and args.sources["--amortised-model"] == args.sources["--model"]


def test_an_esmfold_folder_without_a_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse(["--esmfold", str(tmp_path)])
    assert exc.value.code == 2 and "no ESMFold model here" in capsys.readouterr().err


def test_a_tiny_run_prints_its_json_and_writes_it(tmp_path: Path) -> None:
    out = tmp_path / "motif.json"
    cmd = [sys.executable, str(SCRIPT), "--motifs", "1", "--n", "1", "--steps", "3", "--threads", "1", "--out",
           str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == result
    assert set(result["methods"]) == {"replacement", "hold", "guided", "amortised", "unconditional"}
    assert result["skipped"] == {}  # the shipped model has a motif input: the amortised model by default
    assert result["settings"]["methods"] == ["replacement", "hold", "guided", "amortised"]
    assert result["settings"]["amortised_model"] == result["settings"]["model"]
    for method in ("replacement", "hold", "guided", "amortised"):
        s = result["methods"][method]
        assert s["n_samples"] == 1 and s["motif_rmsd_mean"] < 1.0  # every method keeps the motif's frames
        assert set(result["goals"][method]) == {"rmsd_success_ge_90", "continuous_ge_90",
                                                "motif_clashes_le_unconditional", "ca_ca_outliers_le_unconditional"}
    assert "motif_rmsd_mean" not in result["methods"]["unconditional"]
    assert result["designability"].startswith("skipped") and result["motifs"][0]["motif"].startswith("m00_")
    assert "replacement" in proc.stderr and "unconditional" in proc.stderr  # the table


def test_a_bad_argument_exits_2_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "motif.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--n", "0", "--out", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, check=False)
    assert proc.returncode == 2 and "--n must be at least 1" in proc.stderr and not proc.stdout
    assert not out.exists()


@pytest.mark.slow  # ~20 s; the amortised method's CLI run (test_cli_design_proteins.py) stays in the default suite
def test_a_tiny_amortised_run_holds_the_motif(motif_model: Path) -> None:
    """Method amortised with ``--amortised-model``: the motif's frames held exactly (CA RMSD ~1e-6 A; the backbone
    RMSD, ~0.05 A, is the written idealised backbone against the file's atoms, as for replacement and hold)."""
    cmd = [sys.executable, str(SCRIPT), "--motifs", "1", "--n", "1", "--steps", "3", "--threads", "1", "--methods",
           "amortised", "--amortised-model", str(motif_model)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["methods"]) == {"amortised", "unconditional"} and result["skipped"] == {}
    s = result["methods"]["amortised"]
    assert s["n_samples"] == 1 and s["motif_ca_rmsd_mean"] < 1e-3 and s["motif_rmsd_mean"] < 0.2
    assert set(result["goals"]) == {"amortised"}
    assert result["settings"]["amortised_model"] == str(motif_model)
    assert result["settings"]["model"].endswith("protein_small.safetensors")
    assert "amortised" in proc.stderr  # the table
