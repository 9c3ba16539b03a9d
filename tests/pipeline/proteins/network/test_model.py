"""The protein network against MultiFlow's own numbers (tests/fixtures/multiflow), its released key
list, SE(3) equivariance, padding, and the typed boundary."""

from __future__ import annotations

import pytest
import torch

from manifolds import so3
from pipeline.proteins.network import CONFIGS, ProteinNetwork, ProteinNetworkInput

OUTPUTS = ("pred_trans", "pred_rotmats", "pred_logits")
MODULES = (("ipa", "ipa_out"), ("seq_tfmr", "seq_tfmr_out"), ("node_transition", "node_transition_out"),
           ("bb_update", "bb_update_out"), ("edge_transition", "edge_transition_out"))


def _fixture_net(fx, dtype: torch.dtype) -> ProteinNetwork:
    net = ProteinNetwork(fx.config, init=False).to(dtype)  # dtype first: loading copies into the parameters
    net.load_state_dict(fx.state_dict, strict=True)
    return net.eval()


def _run_with_hooks(net: ProteinNetwork, inp: ProteinNetworkInput):
    """Outputs and the README's intermediates, taken by forward hooks as the fixture's driver did."""
    mids: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda _m, _i, out: mids.__setitem__(name, out.detach().clone())

    hooks = [net.node_feature_net.register_forward_hook(keep("init_node_embed")),
             net.edge_feature_net.register_forward_hook(keep("init_edge_embed"))]
    for b in range(net.cfg.ipa.num_blocks):
        for mod, name in MODULES:
            if f"{mod}_{b}" in net.trunk:
                hooks.append(net.trunk[f"{mod}_{b}"].register_forward_hook(keep(f"block{b}.{name}")))
    with torch.no_grad():
        out = net(inp)
    for h in hooks:
        h.remove()
    return out, mids


def test_float64_equals_multiflow_strict_reference(multiflow_fixture) -> None:
    fx = multiflow_fixture
    out, mids = _run_with_hooks(_fixture_net(fx, torch.float64), fx.input())
    expected_mids = {k[len("mid_f64strict."):]: v for k, v in fx.io.items() if k.startswith("mid_f64strict.")}
    assert sorted(mids) == sorted(expected_mids) and len(mids) == 11
    for k, ref in expected_mids.items():
        assert mids[k].shape == ref.shape, k
        assert (mids[k] - ref).abs().max().item() <= 1e-10, k
    for k in OUTPUTS:
        got, ref = getattr(out, k), fx.io[f"out_f64strict.{k}"]
        assert got.dtype == torch.float64 and got.shape == ref.shape
        assert (got - ref).abs().max().item() <= 1e-10, k
        # MultiFlow as released (frames forced to float32): the README's 1.2e-6 / 4.8e-7 / 3.8e-9
        assert (got - fx.io[f"out.{k}"].double()).abs().max().item() <= 5e-6, k
    assert torch.equal(out.pred_aatypes, fx.io["out_f64strict.pred_aatypes"])
    assert torch.equal(out.pred_aatypes, fx.io["out.pred_aatypes"])


def test_float32_equals_multiflow_float32(multiflow_fixture) -> None:
    fx = multiflow_fixture
    out, mids = _run_with_hooks(_fixture_net(fx, torch.float32), fx.input().to(dtype=torch.float32))
    for k in OUTPUTS:
        got = getattr(out, k)
        assert got.dtype == torch.float32
        assert (got - fx.io[f"out_f32.{k}"]).abs().max().item() <= 1e-4, k
        assert (got.double() - fx.io[f"out_f64strict.{k}"]).abs().max().item() <= 1e-4, k
    for k, v in mids.items():
        assert (v.double() - fx.io[f"mid_f64strict.{k}"]).abs().max().item() <= 1e-4, k
    assert torch.equal(out.pred_aatypes, fx.io["out_f32.pred_aatypes"])


def test_multiflow_config_matches_released_key_list(multiflow_fixture) -> None:
    lines = (multiflow_fixture.folder / "released_state_dict_keys.tsv").read_text().splitlines()
    released = {}
    for line in filter(None, lines):
        key, shape = line.split("\t")
        assert key.startswith("model.")
        released[key[len("model."):]] = tuple(int(x) for x in shape.strip("[]").split(",") if x.strip())
    net = ProteinNetwork("multiflow", init=False)
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert len(released) == 713 and ours == released
    assert sum(v.numel() for v in net.state_dict().values()) == 21_786_309


def test_small_config_size_and_training_step() -> None:
    torch.manual_seed(0)
    net = ProteinNetwork("small")
    assert net.num_parameters() == 440_429 and net.cfg == CONFIGS["small"]
    inp = _random_input(2, 10, torch.float32)
    out = net(inp)
    loss = out.pred_trans.square().mean() + out.pred_logits.logsumexp(-1).mean() + out.pred_rotmats.sum()
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def _random_input(b: int, n: int, dtype: torch.dtype, seed: int = 0) -> ProteinNetworkInput:
    g = torch.Generator().manual_seed(seed)
    return ProteinNetworkInput(
        trans=torch.randn(b, n, 3, generator=g, dtype=dtype) * 8, rotmats=so3.uniform((b, n), rng=g, dtype=dtype),
        aatypes=torch.randint(0, 21, (b, n), generator=g), res_mask=torch.ones(b, n, dtype=torch.bool),
        so3_t=torch.rand(b, generator=g, dtype=dtype), r3_t=torch.rand(b, generator=g, dtype=dtype),
        cat_t=torch.rand(b, generator=g, dtype=dtype), trans_sc=torch.randn(b, n, 3, generator=g, dtype=dtype) * 8,
        aatypes_sc=torch.randn(b, n, 21, generator=g, dtype=dtype))


def test_se3_equivariance(multiflow_fixture) -> None:
    """Rotating / translating the input frames (and self-conditioning positions) moves the predicted
    frames the same way and leaves the logits unchanged."""
    net = _fixture_net(multiflow_fixture, torch.float64)
    inp = _random_input(2, 11, torch.float64, seed=1)
    g = torch.Generator().manual_seed(5)
    q = so3.uniform((), rng=g, dtype=torch.float64)  # [3, 3]
    c = torch.randn(3, generator=g, dtype=torch.float64) * 10
    moved = ProteinNetworkInput(**{**inp.__dict__, "trans": inp.trans @ q.T + c, "rotmats": q @ inp.rotmats,
                                   "trans_sc": inp.trans_sc @ q.T + c})
    with torch.no_grad():
        a, b = net(inp), net(moved)
    assert (b.pred_trans - (a.pred_trans @ q.T + c)).abs().max().item() <= 1e-8
    assert (b.pred_rotmats - q @ a.pred_rotmats).abs().max().item() <= 1e-8
    assert (b.pred_logits - a.pred_logits).abs().max().item() <= 1e-8
    assert (a.pred_trans - inp.trans).abs().max().item() > 0.1  # the frames really moved


def test_padding_does_not_change_real_residues(multiflow_fixture) -> None:
    net = _fixture_net(multiflow_fixture, torch.float64)
    inp = _random_input(2, 12, torch.float64, seed=2)
    inp.res_mask[1, 9:] = False
    short = ProteinNetworkInput(**{k: (v[1:, :9] if k not in ("so3_t", "r3_t", "cat_t") else v[1:])
                                   for k, v in inp.__dict__.items() if v is not None})
    with torch.no_grad():
        full, cut = net(inp), net(short)
    for k in OUTPUTS:
        assert (getattr(full, k)[1:, :9] - getattr(cut, k)).abs().max().item() <= 1e-10, k


def test_time_shapes_defaults_and_device_helpers(multiflow_fixture) -> None:
    net = _fixture_net(multiflow_fixture, torch.float32)
    inp = _random_input(2, 7, torch.float32, seed=3)
    col = ProteinNetworkInput(**{**inp.__dict__, "so3_t": inp.so3_t[:, None], "r3_t": inp.r3_t[:, None],
                                 "cat_t": inp.cat_t[:, None]})
    bare = ProteinNetworkInput(**{**inp.__dict__, "trans_sc": None, "aatypes_sc": None})
    zeros = ProteinNetworkInput(**{**inp.__dict__, "trans_sc": torch.zeros(2, 7, 3), "aatypes_sc": torch.zeros(2, 7, 21),
                                   "res_idx": torch.arange(7.0).expand(2, 7), "diffuse_mask": torch.ones(2, 7)})
    with torch.no_grad():
        a, b = net.predict(inp), net.predict(col)
        c, d = net.predict(bare), net.predict(zeros)
    assert torch.equal(a.pred_logits, b.pred_logits) and torch.equal(a.pred_trans, b.pred_trans)
    assert torch.equal(c.pred_trans, d.pred_trans) and torch.equal(c.pred_logits, d.pred_logits)
    assert a.pred_aatypes.shape == (2, 7) and (a.pred_aatypes < 20).all()
    with torch.no_grad():
        bf = net.predict(inp, bf16=True)  # autocast (meant for GPUs; CPU autocast runs the same code)
    assert bf.pred_trans.dtype == torch.float32 and torch.isfinite(bf.pred_trans).all()
    assert (bf.pred_trans - a.pred_trans).abs().max().item() < 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(multiflow_fixture) -> None:
    fx = multiflow_fixture
    net = _fixture_net(fx, torch.float32).to("cuda")
    with torch.no_grad():
        out = net.predict(fx.input())
        bf = net.predict(fx.input(), bf16=True)
    for k in OUTPUTS:
        assert getattr(out, k).device.type == "cuda"
        assert (getattr(out, k).cpu() - fx.io[f"out_f32.{k}"]).abs().max().item() <= 1e-4, k
        assert torch.isfinite(getattr(bf, k)).all()
