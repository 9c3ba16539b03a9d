"""Sampling crystals: right-kind tokens, decoding, counted failures, resumable runs, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from structures.errors import InputError
import torch

from pipeline.common.model_file import load_model_file
from pipeline.crystals.flow import allowed_tokens, load_crystal_model, make_scheduler, model_time
from pipeline.crystals import generate as gen
from pipeline.crystals.generate import CrystalGenerateConfig, generate_crystals, sample_tokens
from structures.crystals.tokens import MASK, PAD, TOKEN_KIND, decode_batch, position_kinds
from workflows.cli import main

FAST = CrystalGenerateConfig(steps=12, temperature=0.7)


@pytest.mark.parametrize("config", [FAST, CrystalGenerateConfig(steps=8, corrector=2.0),
                                    CrystalGenerateConfig(steps=8, scheduler="cubic", temperature=1.0)])
def test_sampled_tokens_have_the_right_kind_and_keep_padding(tiny_model_file: Path,
                                                             config: CrystalGenerateConfig) -> None:
    model = load_crystal_model(tiny_model_file)
    counts = np.array([5, 3, 5, 1, 4, 5])
    tok = sample_tokens(model, counts, config, torch.Generator().manual_seed(0))
    assert tok.shape == (6, 6 + 4 * 5)
    kinds = torch.as_tensor(TOKEN_KIND)[tok]  # [B, L]
    expected = torch.as_tensor(position_kinds(5)).expand_as(kinds)
    real = torch.cat([torch.ones(6, 6, dtype=torch.bool),
                      (torch.arange(5)[None] < torch.as_tensor(counts)[:, None]).repeat_interleave(4, 1)], 1)
    assert (kinds[real] == expected[real]).all(), "every real position holds a token of its kind"
    assert (tok[~real] == PAD).all() and not (tok == MASK).any()
    dec = decode_batch(tok)
    assert (dec.num_atoms[dec.valid] == torch.as_tensor(counts).numpy()[dec.valid]).all()
    # well-typed sequences can only fail on the lattice geometry
    assert {f.reason.value for f in dec.failures if f} <= {"degenerate_lattice", "impossible_angles"}


@pytest.mark.parametrize("train,sample", [("kinetic_optimal", "cubic"), ("cubic", "kinetic_optimal"),
                                          ("linear", "cubic"), ("cubic", "cubic")])
def test_model_time_matches_the_noise_level_of_the_training_scheduler(train: str, sample: str) -> None:
    """KO E.1: a model trained with one scheduler is evaluated where its kappa equals the sampler's kappa."""
    t = torch.linspace(0.0, 0.99, 23, dtype=torch.float64)
    tm = model_time(t, train, sample)
    kappa = make_scheduler(train)(tm).kappa[..., 0], make_scheduler(sample)(t).kappa[..., 0]  # token 0: a data token
    assert torch.allclose(*kappa, atol=1e-9)
    assert (tm.diff() > 0).all() and tm.dtype == t.dtype
    if train == sample:
        assert tm is t


def test_allowed_tokens_exclude_pad_and_mask() -> None:
    allowed = allowed_tokens(3)
    assert allowed.shape == (18, 878) and not allowed[:, PAD].any() and not allowed[:, MASK].any()
    assert allowed.sum(1).tolist()[:6] == [500] * 3 + [180] * 3


def test_sampler_follows_the_trained_model(tiny_model_file: Path) -> None:
    """The tiny model has seen only Perov-5 (5 atoms, cubic cells): most samples decode, angles near 90."""
    model = load_crystal_model(tiny_model_file)
    tok = sample_tokens(model, [5] * 32, CrystalGenerateConfig(steps=20), torch.Generator().manual_seed(1))
    dec = decode_batch(tok)
    assert dec.valid.mean() > 0.8
    angles = dec.lattice_params[dec.valid, 3:]
    assert np.median(np.abs(angles - 90.0)) < 10.0


def _files(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()
            and p.name not in ("run.json", ".genmatch.lock")}


def test_generation_run_resumes_without_duplicates(tiny_model_file: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    run10 = CrystalGenerateConfig(n=10, model=tiny_model_file, steps=12, temperature=0.7, batch_size=4)
    ref = generate_crystals(run10, tmp_path / "ref", progress=False)
    assert ref.summary.n == 10 and ref.summary.decoded + ref.summary.decode_failed == 10
    assert sum(ref.summary.failures_by_reason.values()) == ref.summary.decode_failed
    manifest = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    assert [r["id"] for r in manifest["rows"]] == [f"gen_{i:06d}" for i in range(10)]
    assert len(list((tmp_path / "ref" / "cifs").glob("*.cif"))) == ref.summary.decoded - ref.summary.not_writable

    # interrupt a run in its second batch, then rerun: same files as the uninterrupted run, nothing half-written
    real = gen.decode_batch
    calls = {"n": 0}

    def flaky(tokens):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(tokens)

    monkeypatch.setattr(gen, "decode_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_crystals(run10, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "batches").iterdir()) == ["00000.json"]
    assert not list((tmp_path / "run").rglob("*.tmp"))
    monkeypatch.setattr(gen, "decode_batch", real)
    resumed = generate_crystals(run10, tmp_path / "run", progress=False)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")
    assert resumed.summary == ref.summary
    # another setting in the same folder is refused; restart=True starts over
    with pytest.raises(InputError, match="other steps"):
        generate_crystals(replace(run10, steps=5), tmp_path / "run", progress=False)
    again = generate_crystals(replace(run10, steps=5), tmp_path / "run", progress=False, restart=True)
    assert again.summary.settings["steps"] == 5


def test_in_memory_generation_returns_structures(tiny_model_file: Path) -> None:
    res = generate_crystals(CrystalGenerateConfig(n=6, model=tiny_model_file, num_atoms=5, steps=10), progress=False)
    assert len(res.structures) + len(res.failures) == 6 and res.out_dir is None
    assert all(len(s) == 5 for s in res.structures)
    assert all(not f for _, f in res.failures)
    assert res.ids == [f"gen_{i:06d}" for i in range(6) if i not in {j for j, _ in res.failures}]


def test_cli_generate(tiny_model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gen"
    args = ["generate", "crystals", "-n", "5", "--out", str(out), "--model", str(tiny_model_file), "--steps", "6",
            "--batch-size", "3", "--quiet", "--num-atoms", "5"]
    assert main(args) == 0
    assert "generated 5 crystals" in capsys.readouterr().out
    rows = json.loads((out / "manifest.json").read_text())["rows"]
    assert [r["num_atoms"] for r in rows] == [5] * 5
    # a rerun finds everything done; other inputs in the same folder: one-line error, exit 2, nothing changed
    before = _files(out)
    assert main(args) == 0
    assert _files(out) == before
    assert main(args[:-2] + ["--num-atoms", "4"]) == 2
    err = capsys.readouterr().err
    assert "holds a generate-crystals run with other inputs" in err and "--restart" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert _files(out) == before


@pytest.mark.parametrize("extra, code, text", [
    (["--num-atoms", "x"], 2, "--num-atoms"),
    (["--num-atoms", "5,5"], 2, "atom counts"),
    (["--temperature", "0"], 2, "temperature"),
    (["--corrector", "-1"], 2, "corrector"),
    (["--model", "no_such_model"], 2, "neither a checkpoint"),
    (["--scheduler", "quartic"], 2, "scheduler"),
])
def test_cli_generate_errors(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], code: int,
                             text: str) -> None:
    assert main(["generate", "crystals", "-n", "3", "--out", str(tmp_path / "x"), *extra]) == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # bad input: no output folder


def test_cli_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["train", "crystals", "--out", str(out), "--dataset", str(tmp_path / "missing.csv")]) == 2
    assert "not found" in capsys.readouterr().err and not out.exists()
    assert main(["train", "crystals", "--out", str(tmp_path), "--loss", "mse"]) == 2
    assert main(["train"]) == 2
    assert main(["generate", "proteins"]) == 2  # not yet available: a usage error


def test_cli_train_then_generate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`genmatch train crystals` writes a model that `genmatch generate crystals --model FILE` uses; --hidden /
    --blocks / --heads size the DiT and --snapshots keeps every validated model."""
    out = tmp_path / "run"
    assert main(["train", "crystals", "--out", str(out), "--limit", "32", "--batch-size", "8", "--max-steps", "4",
                 "--val-every", "2", "--val-fraction", "0.25", "--warmup-steps", "1", "--quiet", "--threads", "1",
                 "--hidden", "48", "--blocks", "1", "--heads", "4", "--snapshots"]) == 0
    assert "best validation CE" in capsys.readouterr().out
    rec = load_model_file(out / "model.safetensors").record
    assert (rec["network"]["hidden"], rec["network"]["blocks"], rec["network"]["heads"]) == (48, 1, 4)
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["step_0000002.safetensors", "step_0000004.safetensors"]
    last = load_model_file(out / "snapshots" / snaps[-1])
    assert last.record["training"]["step"] == 4
    assert all(torch.equal(v, load_model_file(out / "model.safetensors").state_dict[k])
               for k, v in last.state_dict.items())
    first = load_model_file(out / "snapshots" / snaps[0])
    assert first.record["training"]["step"] == 2 and [s for s, _ in first.record["validation_curve"]] == [2]
    assert main(["generate", "crystals", "-n", "3", "--out", str(tmp_path / "gen"), "--model",
                 str(out / "best.safetensors"), "--steps", "4", "--quiet"]) == 0
    assert json.loads((tmp_path / "gen" / "manifest.json").read_text())["summary"]["n"] == 3
