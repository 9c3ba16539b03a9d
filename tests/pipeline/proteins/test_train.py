"""Training the protein co-design model: interpolant, losses, optimisation, export, resume, DDP (the interpolant's
equality with the construction it replaced: ``tests/pipeline/proteins/train/test_path.py``)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO_ROOT
import torch

from manifolds import so3
from pipeline.common.model_file import load_model_file
from pipeline.proteins.network import ProteinNetwork, ProteinNetworkConfig
from pipeline.proteins.network.checkpoint import load_protein_network, save_protein_checkpoint
from pipeline.proteins.network.config import IPAConfig, scaled_config
from pipeline.proteins.train.data import ProteinDataModule, collate_target, crop_window
from pipeline.proteins.train.interpolant import (Interpolant, InterpolantConfig, NoisyProteins, ProteinTarget,
                                                centred_gaussian, ot_coupling, sample_times)
from pipeline.proteins.train.losses import protein_losses
from pipeline.common.training import DeviceSettings
from pipeline.proteins.train.trainer import ProteinFlowModule, ProteinTrainConfig, train_proteins
from structures.errors import InputError
from structures.proteins.residue_constants import MASK_INDEX

ROOT = REPO_ROOT
TINY: ProteinNetworkConfig = scaled_config(16, 8, pos_emb=8, time_emb=8, feat_dim=4, dropout=0.0,
                                           ipa=IPAConfig(c_hidden=4, no_heads=2, no_qk_points=2, no_v_points=2,
                                                         seq_tfmr_num_heads=2, seq_tfmr_num_layers=1, num_blocks=1))


def tiny_config(**kw) -> ProteinTrainConfig:
    base = dict(network=TINY.to_dict(), min_length=60, max_length=90, crop=32, max_residues=256,
                max_batch_size=8, limit=24, val_fraction=0.25, max_steps=6, val_every=3, warmup_steps=2,
                lr=3e-3, val_times=1, seed=0)
    base.update(kw)
    return ProteinTrainConfig(**base)


def _target(n: int = 4, crop: int = 32) -> ProteinTarget:
    dm = ProteinDataModule(tiny_config(crop=crop))
    chains = dm.train_set
    items = []
    for i in range(n):
        x = chains[i]
        a, b = crop_window(len(x.aatype), crop, None)
        items.append(type(x)(x.name, x.atoms[a:b], x.aatype[a:b], x.residue_index[a:b]))
    return collate_target(items)


# ------------------------------------------------------------------------------------------- interpolant

def test_translation_prior_is_centred_with_scale_10() -> None:
    mask = torch.ones(64, 100, dtype=torch.bool)
    mask[:32, 70:] = False
    x0 = centred_gaussian(mask, 10.0, torch.Generator().manual_seed(0))  # [B, N, 3]
    m = mask[..., None].float()
    assert ((x0 * m).sum(1) / m.sum(1)).abs().max() < 1e-4  # centred over the real residues
    assert (x0[~mask] == 0).all()
    assert x0[mask].std().item() == pytest.approx(10.0, rel=0.03)


def test_minibatch_ot_aligns_and_pairs_noise_with_targets() -> None:
    t = _target(6)
    g = torch.Generator().manual_seed(1)
    x0 = ot_coupling(10.0 * torch.randn(t.trans_1.shape, generator=g), t.trans_1, t.res_mask)
    m = t.res_mask[..., None].float()
    assert ((x0 * m).sum(1) / m.sum(1)).abs().max() < 1e-3 and (x0[~t.res_mask] == 0).all()
    plain = centred_gaussian(t.res_mask, 10.0, torch.Generator().manual_seed(1))

    def cost(x: torch.Tensor) -> float:
        return float(((x - t.trans_1).norm(dim=-1) * t.res_mask).sum() / t.res_mask.sum())

    assert cost(x0) < cost(plain)  # aligned + assigned noise is closer to the data than plain noise


def test_igso3_rotation_prior_spread() -> None:
    """R_0 = R_1 IGSO(3)(sigma 1.5): the angle of R_1^T R_0 follows the IGSO(3) angle density."""
    n = 20_000
    r1 = so3.uniform((n,), torch.Generator().manual_seed(0), dtype=torch.float32)
    target = ProteinTarget(trans_1=torch.zeros(1, n, 3), rotmats_1=r1[None], aatypes_1=torch.zeros(1, n, dtype=torch.long),
                           res_mask=torch.ones(1, n, dtype=torch.bool))
    cfg = InterpolantConfig(batch_ot=False)
    noisy = Interpolant.build(cfg).sample(target, torch.Generator().manual_seed(2),
                                          times=(torch.tensor([cfg.min_t]), torch.tensor([0.5])))
    # at t = t_min, R_t is R_0 moved 1 % of the way: compare its angle law with the prior's
    omega = so3.rotation_angle_between(r1, noisy.rotmats_t[0]).double() / (1 - cfg.min_t)
    grid = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    pdf = so3.igso3_angle_density(grid, 1.5)
    mean_exact = float((grid * pdf).sum() / pdf.sum())
    assert float(omega.mean()) == pytest.approx(mean_exact, abs=0.02)
    uniform_mean = math.pi / 2 + 2 / math.pi  # Haar angle mean: IGSO(3) 1.5 is narrower
    assert float(omega.mean()) < uniform_mean - 0.2


def test_masking_fraction_is_one_minus_kappa() -> None:
    a1 = torch.randint(0, 20, (400, 200), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(a1, dtype=torch.bool)
    mask[:, 150:] = False
    t = torch.linspace(0.01, 0.99, 400)
    path = Interpolant.build(InterpolantConfig()).path.sequence  # the mask path of the linear scheduler
    at = path.sample_from(path.sample_source(a1), a1, t, torch.Generator().manual_seed(1))
    at = torch.where(mask, at, MASK_INDEX)
    frac = ((at == MASK_INDEX) & mask).sum(1).float() / 150  # [B]
    assert (at[~mask] == MASK_INDEX).all() and (at[mask & (at != MASK_INDEX)] == a1[mask & (at != MASK_INDEX)]).all()
    coef = np.polyfit(t.numpy(), frac.numpy(), 1)  # fraction masked = 1 - t
    assert coef[0] == pytest.approx(-1.0, abs=0.03) and coef[1] == pytest.approx(1.0, abs=0.02)
    ko = Interpolant.build(InterpolantConfig(seq_scheduler="kinetic_optimal")).path.sequence
    kappa, _ = ko.kappa(torch.zeros(1, 1, dtype=torch.long), torch.tensor([0.5]))
    assert float(kappa) == pytest.approx(math.sin(math.pi / 4) ** 2)  # KO eq. 33, mask source


def test_times_folding_shares_and_range() -> None:
    s, c = sample_times(20_000, InterpolantConfig(), torch.Generator().manual_seed(0))
    assert ((s == 1) & (c < 1)).float().mean() == pytest.approx(0.1, abs=0.01)  # inverse folding
    assert ((c == 1) & (s < 1)).float().mean() == pytest.approx(0.1, abs=0.01)  # forward folding
    rest = (s < 1) & (c < 1)
    assert s[rest].min() >= 0.01 and s[rest].max() <= 0.99 and not torch.equal(s[rest], c[rest])


# ------------------------------------------------------------------------------------------- losses

def test_losses_finite_ignore_padding_and_overfit() -> None:
    torch.manual_seed(0)
    net = ProteinNetwork(TINY)
    t = _target(4)
    interp = Interpolant.build(InterpolantConfig())
    times = (torch.tensor([0.3, 0.6, 0.8, 0.95]), torch.tensor([0.2, 0.5, 0.7, 0.9]))

    def evaluate(target: ProteinTarget) -> torch.Tensor:
        noisy = interp.sample(target, torch.Generator().manual_seed(5), times=times)
        return protein_losses(noisy, net(noisy.network_input())).total

    with torch.no_grad():
        before = evaluate(t)
        noisy = interp.sample(t, torch.Generator().manual_seed(5), times=times)

        def pad(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, value.expand(4, 5, *x.shape[2:]).to(x.dtype)], 1)

        eye, zero = torch.eye(3), torch.zeros(3)
        tp = ProteinTarget(pad(t.trans_1, zero), pad(t.rotmats_1, eye), pad(t.aatypes_1, torch.tensor(MASK_INDEX)),
                           pad(t.res_mask, torch.tensor(False)))
        noisy_p = NoisyProteins(tp, pad(noisy.trans_t, zero), pad(noisy.rotmats_t, eye),
                                pad(noisy.aatypes_t, torch.tensor(MASK_INDEX)), noisy.r3_t, noisy.so3_t, noisy.cat_t)
        a = protein_losses(noisy, net(noisy.network_input())).total
        b = protein_losses(noisy_p, net(noisy_p.network_input())).total
    assert torch.isfinite(before).all()
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # padding changes no loss
    # 40 AdamW steps on one fixed noisy batch (seeded) lower its loss by a wide margin
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(40):
        noisy = interp.sample(t, torch.Generator().manual_seed(5), times=times)
        loss = protein_losses(noisy, net(noisy.network_input())).total.mean()
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        opt.step()
    with torch.no_grad():
        after = evaluate(t)
    assert after.mean() < 0.6 * before.mean(), (before, after)


# ------------------------------------------------------------------------------------------- trainer

def test_train_exports_records_and_resumes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = train_proteins(tiny_config(max_steps=6), tmp_path, progress=False)
        rec = load_model_file(first.model_path).record
        assert [s for s, _ in rec["validation_curve"]] == [3, 6] and rec["training"]["step"] == 6
        assert rec["kind"] == "protein_network" and rec["weights"] == "ema"
        assert rec["dataset"]["name"] == "proteins" and len(rec["dataset"]["sha256"]) == 64
        assert rec["dataset"]["n_train"] + rec["dataset"]["n_val"] == 24
        assert "genmatch" in rec["code_version"] and len(rec["validation_term_curve"]) == 2
        net = load_protein_network(first.best_path)
        assert net.cfg == TINY
        # resume: continue the same run; the curve is kept
        second = train_proteins(tiny_config(max_steps=9), tmp_path, progress=False)
        assert [s for s, _ in second.record["validation_curve"]] == [3, 6, 9]
        assert second.record["validation_curve"][:2] == rec["validation_curve"]
        with pytest.raises(InputError, match="train-proteins run with other lr"):
            train_proteins(tiny_config(max_steps=12, lr=1e-2), tmp_path, progress=False)
    stored = load_model_file(second.model_path).record
    assert json.loads(json.dumps(stored)) == stored  # the record is plain JSON (no tuples, paths or tensors)
    assert stored["training"]["step"] == 9 and stored["flow"]["interpolant"]["batch_ot"] is True


def test_init_from_a_checkpoint_starts_from_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(3)
    start = ProteinNetwork(TINY)
    path = save_protein_checkpoint(tmp_path / "start.safetensors", start)
    mod = ProteinFlowModule(tiny_config(init=str(path)), {}, load_protein_network(path).train(), {"path": str(path)})
    assert all(torch.equal(a, b) for a, b in zip(mod.net.state_dict().values(), start.state_dict().values()))
    with pytest.raises(InputError):
        train_proteins(tiny_config(init=str(tmp_path / "missing.ckpt")), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_fine_tune_from_a_multiflow_lightning_checkpoint(tmp_path: Path) -> None:
    """``--init last.ckpt`` (MultiFlow layout: ``model.``-prefixed state dict, config.yaml beside it)."""
    import yaml

    torch.manual_seed(4)
    start = ProteinNetwork(TINY)
    folder = tmp_path / "mf"
    folder.mkdir()
    torch.save({"state_dict": {f"model.{k}": v for k, v in start.state_dict().items()}, "global_step": 7},
               folder / "last.ckpt")
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": TINY.to_dict()}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_proteins(tiny_config(init=str(folder / "last.ckpt"), max_steps=3, network="multiflow"),
                             tmp_path / "out", progress=False)
    assert res.record["init"]["file"] == "last.ckpt" and len(res.record["init"]["sha256"]) == 64
    assert load_protein_network(res.model_path).cfg == TINY  # the checkpoint's config, not --network


def test_safetensors_whose_first_byte_is_0x80_loads(tmp_path: Path) -> None:
    """A safetensors file starts with its header length; a low byte 0x80 is not the pickle magic (a DDP run's
    best.safetensors was refused as 'a raw (legacy) pickle' before)."""
    net = ProteinNetwork(TINY)
    for k in range(300):
        path = save_protein_checkpoint(tmp_path / "m.safetensors", net, record={"pad": "x" * k})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert load_protein_network(path).cfg == TINY


def test_bad_options_refused_before_the_folder_exists(tmp_path: Path) -> None:
    from workflows.cli import main

    out = tmp_path / "o"
    for args in (["--max-length", "50", "--min-length", "60"], ["--crop", "0"], ["--lr", "nan"],
                 ["--dataset", str(tmp_path / "nope.npz")], ["--max-residues", "100"],
                 ["--seq-scheduler", "bogus"]):
        assert main(["train", "proteins", "--out", str(out), "--quiet", *args]) == 2, args
        assert not out.exists()


def test_device_settings_are_checked_once_and_named(tmp_path: Path) -> None:
    """``train_proteins(hardware=DeviceSettings(...))``: bad values raise InputError naming the field, before any
    run folder exists; the CLI's spellings are accepted."""
    assert DeviceSettings(accelerator="GPU", devices=2).trainer_kwargs() == dict(
        accelerator="gpu", devices=2, num_nodes=1, strategy="ddp")
    assert DeviceSettings().trainer_kwargs()["strategy"] == "auto"
    for kw, name in ((dict(accelerator="quantum"), "DeviceSettings.accelerator"),
                     (dict(devices=0), "DeviceSettings.devices"), (dict(num_nodes="2"), "DeviceSettings.num_nodes")):
        with pytest.raises(InputError, match=name):
            DeviceSettings(**kw)
    with pytest.raises(InputError, match="hardware"):
        train_proteins(tiny_config(), tmp_path / "out", hardware="gpu", progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # ~40 s: two processes start Lightning (the default suite keeps under 15 min)
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    """`genmatch train proteins --devices 2`: Lightning DDP (gloo) with 2 CPU processes (~15 s)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    exe = Path(sys.executable).with_name("genmatch")  # the console script (what users run; DDP relaunches it)
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "workflows.cli"]
    cmd = [*cli, "train", "proteins", "--out", str(tmp_path), "--devices", "2",
           "--limit", "40", "--max-length", "90", "--crop", "32", "--max-residues", "128", "--max-steps", "4",
           "--val-every", "2", "--val-fraction", "0.25", "--warmup-steps", "1", "--threads", "1", "--quiet"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = load_model_file(tmp_path / "model.safetensors").record
    assert rec["training"]["world_size"] == 2 and rec["training"]["step"] == 4
    assert [s for s, _ in rec["validation_curve"]] == [2, 4]
    load_protein_network(tmp_path / "best.safetensors")
