"""Protein checkpoints: a MultiFlow Lightning .ckpt (written the way Lightning writes it) and genmatch
safetensors load and reproduce MultiFlow's numbers; unsafe pickles are refused without running;
mismatches say which tensors and which config."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from pipeline.proteins.network import ProteinNetwork
from pipeline.proteins.network.checkpoint import (
    CheckpointError,
    UnsafeCheckpointError,
    describe_checkpoint,
    load_protein_network,
    read_protein_checkpoint,
    resolve_interpolations,
    save_protein_checkpoint,
)
from structures.errors import InputError

OUTPUTS = ("pred_trans", "pred_rotmats", "pred_logits")


def _multiflow_doc(fx) -> dict:
    """A MultiFlow-style config document: the model section with the ${...} interpolations that
    MultiFlow's config.yaml keeps (OmegaConf.save does not resolve them), plus other sections."""
    model = {**fx.config_doc["model"]}
    model["node_features"] = {**model["node_features"], "c_s": "${model.node_embed_size}",
                              "aatype_pred_num_tokens": "${model.aatype_pred_num_tokens}"}
    model["edge_features"] = {**model["edge_features"], "c_s": "${model.node_embed_size}",
                              "c_p": "${model.edge_embed_size}"}
    model["ipa"] = {**model["ipa"], "c_s": "${model.node_embed_size}", "c_z": "${model.edge_embed_size}"}
    return {"data": {"dataset": "pdb"}, "interpolant": {"min_t": 0.01, "self_condition": True},
            "model": model, "experiment": {"checkpointer": {"dirpath": "ckpt/${data.dataset}"}}}


def _write_lightning_ckpt(fx, folder: Path, with_yaml: bool = True, doc: dict | None = None) -> Path:
    """What Lightning's checkpoint connector writes for MultiFlow's FlowModule: ``save_hyperparameters()``
    stores its init arguments, and the connector writes ``dict(module.hparams)`` (values: OmegaConf)."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = doc or _multiflow_doc(fx)
    cfg = OmegaConf.create(doc)
    state = collections.OrderedDict((f"model.{k}", v.clone()) for k, v in fx.state_dict.items())
    param = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([param], lr=1e-4)
    param.grad = torch.ones(3)
    opt.step()
    ckpt = {
        "epoch": 549, "global_step": 123456, "pytorch-lightning_version": "2.1.4", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 550}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_path": "", "best_model_score": None,
                                                            "dirpath": "ckpt/pdb"}},
        "optimizer_states": [opt.state_dict()], "lr_schedulers": [],
        "hparams_name": "kwargs", "hyper_parameters": {"cfg": cfg, "dataset_cfg": OmegaConf.create({"dataset": "pdb"}),
                                                   "folding_cfg": None, "folding_device_id": None},
    }
    path = folder / "last.ckpt"
    torch.save(ckpt, path)
    if with_yaml:
        OmegaConf.save(config=cfg, f=folder / "config.yaml")
    return path


def _assert_reproduces_fixture(net: ProteinNetwork, fx) -> None:
    with torch.no_grad():
        out = net(fx.input())
    for k in OUTPUTS:
        assert (getattr(out, k) - fx.io[f"out_f64strict.{k}"]).abs().max().item() <= 1e-10, k


def test_lightning_checkpoint_with_config_yaml(multiflow_fixture, tmp_path: Path) -> None:
    fx = multiflow_fixture
    path = _write_lightning_ckpt(fx, tmp_path / "run")
    assert "${model.node_embed_size}" in (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(Exception):  # what a plain safe torch.load does with it
        torch.load(path, weights_only=True)
    ck = read_protein_checkpoint(path)
    assert ck.format == "multiflow-lightning" and ck.config == fx.config
    assert ck.config_source == str(tmp_path / "run" / "config.yaml")
    assert set(ck.state_dict) == set(fx.state_dict) and ck.info["global_step"] == 123456
    _assert_reproduces_fixture(load_protein_network(path, dtype=torch.float64), fx)
    net32 = load_protein_network(path)  # float32 default
    assert net32.dtype == torch.float32 and not net32.training


def test_lightning_checkpoint_config_from_hyper_parameters(multiflow_fixture, tmp_path: Path) -> None:
    fx = multiflow_fixture
    path = _write_lightning_ckpt(fx, tmp_path / "run", with_yaml=False)
    ck = read_protein_checkpoint(path)
    assert ck.config == fx.config and ck.config_source == "hyper_parameters in last.ckpt"
    _assert_reproduces_fixture(load_protein_network(path, dtype=torch.float64), fx)


def test_genmatch_checkpoint_round_trip_and_describe(multiflow_fixture, tmp_path: Path) -> None:
    fx = multiflow_fixture
    net = ProteinNetwork(fx.config, init=False).double()
    net.load_state_dict(fx.state_dict)
    path = save_protein_checkpoint(tmp_path / "p.safetensors", net, {"note": "fixture"})
    loaded = load_protein_network(path, dtype=torch.float64)
    assert loaded.cfg == fx.config
    _assert_reproduces_fixture(loaded, fx)
    d = describe_checkpoint(path)
    assert d["format"] == "genmatch" and d["config"] == "custom" and d["parameters"] == 48_869
    assert d["tensors"] == 119 and d["weights_fit_config"] and d["note"] == "fixture"
    d = describe_checkpoint(_write_lightning_ckpt(fx, tmp_path / "run"))
    assert d["format"] == "multiflow-lightning" and d["config_source"].endswith("config.yaml")
    assert d["sizes"]["node_embed_size"] == 32 and d["sizes"]["num_blocks"] == 2 and d["epoch"] == 549
    assert d["parameters"] == 48_869 and d["weights_fit_config"] and d["ignored_tensors"] == 0


class _Payload:
    """Unpickling this creates a file (builtins.open in write mode): the side effect to look for."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_checkpoint_is_refused_and_never_runs(multiflow_fixture, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    evil = tmp_path / "evil" / "last.ckpt"
    evil.parent.mkdir()
    state = {f"model.{k}": v for k, v in multiflow_fixture.state_dict.items()}
    torch.save({"state_dict": state, "hyper_parameters": {"x": _Payload(target)}}, evil)
    for call in (read_protein_checkpoint, load_protein_network, describe_checkpoint):
        with pytest.raises(UnsafeCheckpointError) as err:
            call(evil)
        assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)
        assert "\n" not in str(err.value) and "open" in str(err.value)
        assert not target.exists()
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps(_Payload(target)))
    with pytest.raises(CheckpointError, match="pickle"):
        read_protein_checkpoint(raw)
    assert not target.exists()
    torch.load(evil, weights_only=False)  # the payload is real: an unrestricted load runs it
    assert target.exists()


def test_mismatched_weights_name_the_tensors_and_the_config(multiflow_fixture, tmp_path: Path) -> None:
    fx = multiflow_fixture
    doc = _multiflow_doc(fx)
    doc["model"]["ipa"] = {**doc["model"]["ipa"], "num_blocks": 3}
    path = _write_lightning_ckpt(fx, tmp_path / "blocks", doc=doc)
    with pytest.raises(CheckpointError) as err:
        load_protein_network(path)
    msg = str(err.value)
    assert "\n" not in msg and "missing" in msg and "trunk.ipa_2" in msg and "3 blocks" in msg
    assert "config.yaml" in msg
    doc = _multiflow_doc(fx)
    doc["model"]["node_embed_size"] = 64
    path = _write_lightning_ckpt(fx, tmp_path / "wide", doc=doc)
    with pytest.raises(CheckpointError, match="wrong-shape.*node 64"):
        load_protein_network(path)
    assert not describe_checkpoint(path)["weights_fit_config"]


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_protein_checkpoint(tmp_path / "nope.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="neither"):
        read_protein_checkpoint(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.ones(2)}, other)
    with pytest.raises(CheckpointError, match="state_dict"):
        read_protein_checkpoint(other)


def test_interpolation_resolution() -> None:
    doc = {"a": {"b": 3, "s": "x${a.b}y"}, "c": "${a.b}", "d": ["${c}"]}
    assert resolve_interpolations(doc, doc) == {"a": {"b": 3, "s": "x3y"}, "c": 3, "d": [3]}
    with pytest.raises(ValueError, match="points to nothing"):
        resolve_interpolations({"x": "${nope.z}"}, {})
    with pytest.raises(ValueError, match="absolute"):
        resolve_interpolations({"x": "${oc.env:HOME}"}, {})


def test_cli_info_checkpoint(multiflow_fixture, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from workflows.cli import main

    path = _write_lightning_ckpt(multiflow_fixture, tmp_path / "mf")
    assert main(["info", "--checkpoint", str(path), "--json"]) == 0
    import json

    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "multiflow-lightning" and d["tensors"] == 119 and d["weights_fit_config"]
    assert d["config_source"].endswith("config.yaml")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["info", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
