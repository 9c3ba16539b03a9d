"""Training the crystal DiT with KO-DFM: losses, optimisation, checkpoints, resume, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from pipeline.common.model_file import load_model_file
from pipeline.crystals.flow import CrystalPosterior, load_crystal_model
from pipeline.crystals.network import CrystalDiT, CrystalDiTConfig
from pipeline.crystals.train import CrystalDataModule, augment_tokens, flow_loss, noisy_tokens, train_crystals
from structures.crystals.tokens import PAD
from structures.errors import InputError
from helpers import REPO_ROOT, TINY_NET, tiny_config

ROOT = REPO_ROOT


def _batch(n: int = 8) -> torch.Tensor:
    dm = CrystalDataModule(tiny_config(batch_size=n))
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("loss", ["ce", "elbo"])
@pytest.mark.parametrize("scheduler", ["cubic", "kinetic_optimal", "linear"])
def test_loss_finite_and_ignores_padding(loss: str, scheduler: str) -> None:
    torch.manual_seed(0)
    post = CrystalPosterior(CrystalDiT(CrystalDiTConfig(**TINY_NET)))
    x1 = _batch(4)  # perov: [4, 26], 5 atoms each
    t = torch.tensor([0.1, 0.4, 0.7, 0.95])
    xt = noisy_tokens(x1, t, scheduler, torch.Generator().manual_seed(1))
    assert (xt != x1).any() and (xt == x1).any()
    pad = torch.full((4, 8), PAD)  # two empty atom slots
    a, n_a = flow_loss(post, x1, xt, t, loss, scheduler)
    b, n_b = flow_loss(post, torch.cat([x1, pad], 1), torch.cat([xt, pad], 1), t, loss, scheduler)
    assert torch.isfinite(a) and int(n_a) == int(n_b) == 4 * 26
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # padding changes neither the loss nor its count
    a.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in post.parameters() if p.requires_grad)


@pytest.mark.parametrize("loss", ["ce", "elbo"])
def test_a_few_steps_overfit_a_small_batch(loss: str) -> None:
    """30 AdamW steps on 8 crystals lower the loss at fixed times and noise by a wide margin."""
    torch.manual_seed(0)
    post = CrystalPosterior(CrystalDiT(CrystalDiTConfig(**TINY_NET)))
    x1 = _batch(8)
    t = torch.linspace(0.05, 0.9, 8)

    def evaluate() -> float:
        with torch.no_grad():
            xt = noisy_tokens(x1, t, "kinetic_optimal", torch.Generator().manual_seed(5))
            return float(flow_loss(post, x1, xt, t, loss, "kinetic_optimal")[0])

    before = evaluate()
    opt = torch.optim.AdamW(post.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        tr = torch.rand(8, generator=g)
        value, _ = flow_loss(post, x1, noisy_tokens(x1, tr, "kinetic_optimal", g), tr, loss, "kinetic_optimal")
        opt.zero_grad()
        value.backward()
        opt.step()
    after = evaluate()
    assert after < 0.6 * before, (before, after)


def test_train_writes_safetensors_with_record_and_resumes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = train_crystals(tiny_config(max_steps=20), tmp_path, progress=False)
        rec = load_model_file(first.model_path).record
        assert [s for s, _ in rec["validation_curve"]] == [10, 20]
        assert rec["kind"] == "crystal_dit" and rec["weights"] == "ema" and rec["training"]["step"] == 20
        assert rec["dataset"]["name"] == "perov_5" and len(rec["dataset"]["sha256"]) == 64
        assert rec["dataset"]["n_train"] + rec["dataset"]["n_val"] == 64
        assert rec["flow"] == {"source": "mask", "scheduler": "kinetic_optimal", "loss": "ce",
                               "path": "mixture (KO eq. 2)"}
        assert "genmatch" in rec["code_version"]
        # the validation curve goes down within 20 steps on this tiny set
        assert rec["validation_curve"][-1][1] < rec["validation_curve"][0][1]
        # resume: continue the same run to 30 steps; the curve is kept, not restarted
        second = train_crystals(tiny_config(max_steps=30), tmp_path, progress=False)
        assert [s for s, _ in second.record["validation_curve"]] == [10, 20, 30]
        assert second.record["validation_curve"][:2] == rec["validation_curve"]
        with pytest.raises(InputError, match="train-crystals run with other lr"):
            train_crystals(tiny_config(max_steps=40, lr=1e-2), tmp_path, progress=False)
    model = load_crystal_model(second.model_path)
    assert model.scheduler == "kinetic_optimal" and model.max_atoms == 20
    assert model.atom_count_distribution[5] == pytest.approx(1.0)  # Perov-5: always 5 atoms
    # the shipped file holds only the EMA network: no optimizer state, no pickle (a safetensors JSON header)
    shipped = load_model_file(second.model_path)
    assert set(shipped.state_dict) == set(CrystalDiT(CrystalDiTConfig(**shipped.record["network"])).state_dict())
    assert json.loads(json.dumps(shipped.record)) == shipped.record  # plain JSON types only
    assert shipped.record["validation_curve"] == json.loads(json.dumps(second.record["validation_curve"]))
    assert second.model_path.read_bytes()[8:10] == b'{"'


def test_ema_differs_from_raw_weights_and_is_what_ships(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_crystals(tiny_config(max_steps=10, val_every=10), tmp_path, progress=False)
    shipped = load_model_file(res.model_path).state_dict
    state = torch.load(tmp_path / "lightning" / "last.ckpt", weights_only=True)["state_dict"]
    raw = {k[len("posterior.net."):]: v for k, v in state.items() if k.startswith("posterior.net.")}
    ema = {k[len("ema.net."):]: v for k, v in state.items() if k.startswith("ema.net.")}
    assert set(shipped) == set(ema)
    assert all(torch.equal(shipped[k], ema[k]) for k in shipped)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)


def test_augmented_training_moves_origins_and_records_it(tmp_path: Path) -> None:
    x1 = _batch(8)
    aug = augment_tokens(x1, torch.Generator().manual_seed(0))
    assert (aug[:, :6] == x1[:, :6]).all() and (aug[:, 6::4] == x1[:, 6::4]).all()  # lattice, elements kept
    assert (aug != x1).any(), "coordinates moved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_crystals(tiny_config(max_steps=10, val_every=10, augment=True), tmp_path, progress=False)
    assert res.record["training"]["augment"] is True
    assert all(torch.isfinite(torch.tensor(v)) for _, v in res.record["validation_curve"])


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """`genmatch train crystals --devices 2`: Lightning DDP (gloo) with 2 CPU processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "workflows.cli", "train", "crystals", "--out", str(tmp_path), "--devices", "2",
           "--limit", "64", "--batch-size", "8", "--max-steps", "6", "--val-every", "3", "--val-fraction", "0.25",
           "--warmup-steps", "2", "--threads", "1", "--quiet", "--network", "small"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = load_model_file(tmp_path / "model.safetensors").record
    assert rec["training"]["world_size"] == 2 and rec["training"]["step"] == 6
    assert [s for s, _ in rec["validation_curve"]] == [3, 6]


def test_metric_coordinate_path_noise_training_and_sampling(tmp_path: Path) -> None:
    """--coord-path metric: coordinates start uniform on the grid (never MASK) and concentrate on x1 (KO eq. 27),
    the other tokens keep the mask path; the record says so and the sampler uses it."""
    from pipeline.crystals.flow import FRAC_ONE, CoordinatePath, coordinate_positions
    from pipeline.crystals.generate import CrystalGenerateConfig, sample_tokens
    from structures.crystals.tokens import FRAC_OFFSET, MASK

    coords = CoordinatePath("metric", 5.0, 1.0)
    x1 = _batch(8)  # [8, 6 + 4 * 5] Perov-5
    pos = coordinate_positions((x1.shape[1] - 6) // 4)
    g = torch.Generator().manual_seed(0)
    x0 = noisy_tokens(x1.repeat(50, 1), torch.zeros(400), "kinetic_optimal", g, coords)
    assert (x0[:, ~pos] == MASK).all()
    frac = x0[:, pos]
    assert ((frac >= FRAC_OFFSET) & (frac < FRAC_ONE)).all() and len(frac.unique()) > 90  # uniform grid values
    late = noisy_tokens(x1.repeat(50, 1), torch.full((400,), 0.98), "kinetic_optimal", g, coords)
    off = (late[:, pos] - x1.repeat(50, 1)[:, pos]).abs()
    ring = torch.minimum(off, 100 - off)
    assert (ring <= 2).float().mean() > 0.95 and (ring > 0).any()  # near x1, not yet on it everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="CrystalTrainConfig.loss: the metric coordinate path .* cross-entropy"):
            tiny_config(coord_path="metric", loss="elbo")  # refused when the config is made, before any run
        res = train_crystals(tiny_config(max_steps=10, val_every=10, coord_path="metric"), tmp_path / "m",
                             progress=False)
    assert res.record["flow"]["coordinates"]["c"] == 5.0 and "KO eq. 27" in res.record["flow"]["path"]
    model = load_crystal_model(res.model_path)
    assert model.coords == coords and model.posterior.ring
    tok = sample_tokens(model, [5, 5, 5], CrystalGenerateConfig(steps=8), torch.Generator().manual_seed(1))
    assert not (tok == MASK).any() and not (tok == FRAC_ONE).any()
    with pytest.raises(InputError, match="own scheduler"):
        sample_tokens(model, [5], CrystalGenerateConfig(steps=4, scheduler="cubic"))
