"""Protein-network checkpoints: MultiFlow Lightning ``.ckpt`` files and genmatch safetensors.

One entry point, :func:`read_protein_checkpoint` (and :func:`load_protein_network` on top of it),
for two formats, told apart by their bytes:

(a) a MultiFlow Lightning checkpoint (zip written by ``torch.save``): the weights are
    ``ckpt["state_dict"]`` with every key prefixed ``model.`` (stripped here); the config is the
    ``model:`` section of the ``config.yaml`` beside the file (``yaml.safe_load``; ``${a.b}``
    interpolations resolved here), else the OmegaConf ``hyper_parameters`` stored in the file.
    The pickle is read by :mod:`pipeline.proteins.network.safe_pickle` (allow-list, inert
    OmegaConf objects): a file that would run code is refused and nothing of it executes.
(b) genmatch's own safetensors file (:mod:`pipeline.common.model_file`) whose JSON record holds
    ``kind = "protein_network"`` and ``config``.

A state dict that does not fit the config fails with one line naming the first few missing,
unexpected and wrong-shape tensors and the config that was expected.

:func:`load_protein_model` is what a generation run uses: the ``model`` argument (a shipped model's name, a
path, a loaded :class:`ProteinNetwork` or None for the default) resolved, its file read ONCE, and what the
record says about sampling (``sampling.steps``) and the chain lengths the model was trained on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from pipeline.common.model_file import (MODELS_DIR, ModelFile, NonFiniteWeightsError, check_finite, load_model_file,
                                       save_model_file, state_dict_mismatch)
from pipeline.proteins.network.config import ProteinNetworkConfig, preset_name
from pipeline.proteins.network.model import ProteinNetwork
from pipeline.proteins.network.safe_pickle import CheckpointError, UnsafeCheckpointError, plain, read_torch_zip

KIND = "protein_network"
LIGHTNING_PREFIX = "model."
MULTIFLOW_CKPT_ENV = "GENMATCH_MULTIFLOW_CKPT"

__all__ = ["CheckpointError", "LoadedProteinModel", "ProteinCheckpoint", "UnsafeCheckpointError",
           "describe_checkpoint", "load_protein_model", "load_protein_network", "network_from_checkpoint",
           "read_protein_checkpoint", "save_protein_checkpoint"]


@dataclass
class ProteinCheckpoint:
    """Weights (no ``model.`` prefix) and config of a protein network, with where they came from."""

    path: Path
    format: str  # "multiflow-lightning" | "genmatch"
    config: ProteinNetworkConfig
    config_source: str  # a config.yaml path, "hyper_parameters in <file>" or "record in <file>"
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, versions, ignored keys ...


# ---------------------------------------------------------------------------------------------- config


_INTERP = re.compile(r"\$\{([^}]*)\}")


def resolve_interpolations(node: Any, root: Mapping[str, Any], where: str = "", _depth: int = 0) -> Any:
    """Resolve OmegaConf-style absolute ``${a.b.c}`` references in a ``yaml.safe_load`` tree."""
    if _depth > 32:
        raise ValueError(f"{where}: interpolation cycle")
    if isinstance(node, Mapping):
        return {k: resolve_interpolations(v, root, f"{where}.{k}".lstrip("."), _depth) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_interpolations(v, root, f"{where}[{i}]", _depth) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def lookup(ref: str) -> Any:
        if ref.startswith(".") or ":" in ref:
            raise ValueError(f"{where}: cannot resolve ${{{ref}}} (only absolute references are supported)")
        value: Any = root
        for part in ref.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ValueError(f"{where}: ${{{ref}}} points to nothing")
            value = value[part]
        return resolve_interpolations(value, root, ref, _depth + 1)

    whole = _INTERP.fullmatch(node)
    if whole:
        return lookup(whole.group(1))
    return _INTERP.sub(lambda m: str(lookup(m.group(1))), node)


def config_from_multiflow_yaml(doc: Mapping[str, Any], source: str) -> ProteinNetworkConfig:
    """Network config from a whole MultiFlow config document (its ``model:`` section, resolved)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("model"), Mapping):
        raise CheckpointError(f"{source}: no 'model:' section; give MultiFlow's config.yaml of this checkpoint")
    try:
        return ProteinNetworkConfig.from_multiflow(resolve_interpolations(doc["model"], doc, "model"))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None


# ---------------------------------------------------------------------------------------------- reading


def _magic(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header (``{``). Its first byte
    is that length's low byte, which may be anything (0x80 too), so this is checked before the pickle magic."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= path.stat().st_size


def _read_lightning(path: Path) -> ProteinCheckpoint:
    ckpt = read_torch_zip(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: no 'state_dict' in this torch checkpoint; give a MultiFlow Lightning .ckpt")
    raw = ckpt["state_dict"]
    state = {k[len(LIGHTNING_PREFIX):]: v for k, v in raw.items() if k.startswith(LIGHTNING_PREFIX)}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the state_dict has no tensors under '{LIGHTNING_PREFIX}'; "
                              "is this a MultiFlow checkpoint?")
    yaml_path = path.with_name("config.yaml")
    if yaml_path.is_file():
        try:
            doc = yaml.safe_load(yaml_path.read_text())
        except yaml.YAMLError as exc:
            raise CheckpointError(f"{yaml_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        cfg, source = config_from_multiflow_yaml(doc, str(yaml_path)), str(yaml_path)
    else:
        hp = plain(ckpt.get("hyper_parameters"))
        doc = hp.get("cfg") if isinstance(hp, dict) else None
        if doc is None:
            raise CheckpointError(f"{path}: no config.yaml beside it and no 'cfg' in its hyper_parameters; put "
                                  "MultiFlow's config.yaml of this run next to the .ckpt")
        source = f"hyper_parameters in {path.name}"
        cfg = config_from_multiflow_yaml(doc, source)
    info = {k: ckpt[k] for k in ("epoch", "global_step", "pytorch-lightning_version") if k in ckpt}
    info["ignored_tensors"] = len(raw) - len(state)
    lengths = _multiflow_lengths(doc)
    if lengths is not None:
        info["trained_lengths"] = lengths
    return ProteinCheckpoint(path, "multiflow-lightning", cfg, source, state, info)


def _multiflow_lengths(doc: Any) -> list[int] | None:
    """[min, max] chain length of a MultiFlow training config: a section (``pdb_dataset`` in MultiFlow's
    base.yaml) with both ``min_num_res`` and ``max_num_res``; None when the document has none."""
    if not isinstance(doc, Mapping):
        return None
    for key, section in doc.items():
        if key != "model" and isinstance(section, Mapping):
            lo, hi = section.get("min_num_res"), section.get("max_num_res")
            if isinstance(lo, int) and isinstance(hi, int):
                return [lo, hi]
    return None


def _read_genmatch(path: Path, device: str | torch.device) -> ProteinCheckpoint:
    try:
        ck = load_model_file(path, device=device)
    except NonFiniteWeightsError:
        raise
    except (ValueError, OSError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: neither a torch zip checkpoint (.ckpt) nor a genmatch safetensors file "
                              f"({first})") from None
    if ck.record.get("kind") != KIND or "config" not in ck.record:
        raise CheckpointError(f"{path}: not a protein-network checkpoint (record kind "
                              f"{ck.record.get('kind')!r}); give a file written by save_protein_checkpoint")
    try:
        cfg = ProteinNetworkConfig.from_dict(ck.record["config"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad config in the record ({exc})") from None
    info = {k: v for k, v in ck.record.items() if k not in ("config", "kind")}
    return ProteinCheckpoint(path, "genmatch", cfg, f"record in {path.name}", ck.state_dict, info)


def read_protein_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> ProteinCheckpoint:
    """Weights and config of a MultiFlow ``.ckpt`` (+ ``config.yaml``) or a genmatch safetensors file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; give the path of a .ckpt or .safetensors file")
    if _is_safetensors(path):
        return _read_genmatch(path, device)
    magic = _magic(path)
    if magic[:1] == b"\x80":
        raise CheckpointError(f"{path}: a raw (legacy) pickle; such files are not read because unpickling them "
                              "could run code; re-save it with torch.save (zip format) or as safetensors")
    if magic == b"PK\x03\x04":
        ck = _read_lightning(path)
        check_finite(ck.state_dict, str(path))
        ck.state_dict = {k: v.to(device) for k, v in ck.state_dict.items()}
        return ck
    return _read_genmatch(path, device)


def _summary(cfg: ProteinNetworkConfig) -> str:
    i = cfg.ipa
    name = preset_name(cfg) or "custom"
    return (f"{name} (node {cfg.node_embed_size}, edge {cfg.edge_embed_size}, {i.num_blocks} blocks, "
            f"{i.no_heads} heads, c_hidden {i.c_hidden}, points {i.no_qk_points}/{i.no_v_points}, "
            f"seq transformer {i.seq_tfmr_num_layers}x{i.seq_tfmr_num_heads})")


def load_protein_network(path: str | os.PathLike, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> ProteinNetwork:
    """The network of a checkpoint (either format), weights loaded strictly, in eval mode."""
    return network_from_checkpoint(read_protein_checkpoint(path), device, dtype)


def network_from_checkpoint(ck: ProteinCheckpoint, device: str | torch.device = "cpu",
                            dtype: torch.dtype = torch.float32) -> ProteinNetwork:
    """The network of a checkpoint already read (:func:`read_protein_checkpoint`), in eval mode."""
    net = ProteinNetwork(ck.config, init=False).to(device=device, dtype=dtype)  # dtype before loading
    problem = state_dict_mismatch(net, ck.state_dict)
    if problem:
        raise CheckpointError(f"{ck.path}: weights do not fit the config from {ck.config_source}: {problem}; "
                              f"expected config {_summary(ck.config)}")
    net.load_state_dict(ck.state_dict, strict=True)
    return net.eval()


def save_protein_checkpoint(path: str | os.PathLike, net: ProteinNetwork,
                            record: Mapping[str, Any] | None = None) -> Path:
    """Write ``net`` as a genmatch safetensors checkpoint (record: kind, config and ``record``)."""
    rec = {**(record or {}), "kind": KIND, "config": net.cfg.to_dict()}
    return save_model_file(path, ModelFile(state_dict=net.state_dict(), record=rec))


def describe_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a protein checkpoint for ``genmatch info --checkpoint``: format, config (and where it
    came from), sizes, parameter / tensor counts and whether the weights fit the config."""
    ck = read_protein_checkpoint(path)
    cfg = ck.config
    with torch.device("meta"):  # shapes only, no memory
        net = ProteinNetwork(cfg, init=False)
    problem = state_dict_mismatch(net, ck.state_dict)
    return {
        "path": str(ck.path),
        "format": ck.format,
        "config": preset_name(cfg) or "custom",
        "config_source": ck.config_source,
        "sizes": {"node_embed_size": cfg.node_embed_size, "edge_embed_size": cfg.edge_embed_size,
                  "num_blocks": cfg.ipa.num_blocks, "ipa_heads": cfg.ipa.no_heads, "c_hidden": cfg.ipa.c_hidden,
                  "qk_points": cfg.ipa.no_qk_points, "v_points": cfg.ipa.no_v_points,
                  "seq_tfmr_layers": cfg.ipa.seq_tfmr_num_layers, "aatype_pred": cfg.aatype_pred},
        "parameters": int(sum(v.numel() for v in ck.state_dict.values())),
        "tensors": len(ck.state_dict),
        "weights_fit_config": not problem,
        "mismatch": problem,
        **{k: v for k, v in ck.info.items() if isinstance(v, (int, float, str, bool))},
    }


def default_multiflow_checkpoint() -> Path | None:
    """The released MultiFlow checkpoint named by ``$GENMATCH_MULTIFLOW_CKPT``, if set and present."""
    value = os.environ.get(MULTIFLOW_CKPT_ENV)
    return Path(value).expanduser() if value and Path(value).expanduser().is_file() else None


SHIPPED_PROTEIN_MODEL = MODELS_DIR / "protein_small.safetensors"


def default_protein_checkpoint() -> Path | None:
    """The checkpoint ``generate proteins`` uses without ``--checkpoint``: ``$GENMATCH_MULTIFLOW_CKPT``
    when set and present, else the shipped ``pipeline/models/protein_small.safetensors`` (None if neither)."""
    return default_multiflow_checkpoint() or (SHIPPED_PROTEIN_MODEL if SHIPPED_PROTEIN_MODEL.is_file() else None)


@dataclass
class LoadedProteinModel:
    """A network ready to sample with, and what its checkpoint says (read once per run).

    ``source``: the file, or "a ProteinNetwork object"; ``inputs``: what identifies the weights in a run
    folder's fingerprint (the file's bytes, and MultiFlow's config.yaml beside a ``.ckpt``; the tensors and
    config of an object).
    """

    net: ProteinNetwork
    source: str
    info: dict[str, Any] = field(default_factory=dict)
    inputs: list[Any] = field(default_factory=list)

    def default_steps(self, fallback: int) -> int:
        """``sampling.steps`` of the record (the shipped model's: 50), else ``fallback``."""
        sampling = self.info.get("sampling")
        steps = sampling.get("steps") if isinstance(sampling, dict) else None
        return int(steps) if isinstance(steps, int) and steps >= 2 else fallback

    def trained_lengths(self) -> tuple[int, int | None] | None:
        """(shortest, longest or None) chain the model was trained on: the record's ``dataset.length_range``
        (capped by ``dataset.crop``), or a MultiFlow config's ``min_num_res`` / ``max_num_res``; None if unknown."""
        data = self.info.get("dataset")
        rng = data.get("length_range") if isinstance(data, dict) else self.info.get("trained_lengths")
        if not isinstance(rng, (list, tuple)) or len(rng) != 2 or not isinstance(rng[0], int):
            return None
        lo, hi = int(rng[0]), (int(rng[1]) if isinstance(rng[1], int) else None)
        crop = data.get("crop") if isinstance(data, dict) else None
        if isinstance(crop, int):  # longer chains were cut to windows of ``crop`` residues
            lo, hi = min(lo, crop), (crop if hi is None else min(hi, crop))
        return lo, hi


def resolve_protein_model(model: "str | os.PathLike | ProteinNetwork | None") -> "Path | ProteinNetwork":
    """The ``model`` argument as a file or a network: None is the default (``$GENMATCH_MULTIFLOW_CKPT``, else the
    shipped model), a name without a suffix is a shipped model (``protein_small``), anything else a path."""
    if isinstance(model, ProteinNetwork):
        return model
    if model is None:
        path = default_protein_checkpoint()
        if path is None:
            raise CheckpointError(f"model: no protein model: the shipped {SHIPPED_PROTEIN_MODEL} is missing; give "
                                  f"model (a MultiFlow .ckpt with its config.yaml, or a genmatch .safetensors) or "
                                  f"set {MULTIFLOW_CKPT_ENV}")
        return path
    if isinstance(model, str) and "/" not in model and not Path(model).suffix and not Path(model).exists():
        shipped = MODELS_DIR / f"{model}.safetensors"
        if not shipped.is_file():
            names = sorted(p.stem for p in MODELS_DIR.glob("protein*.safetensors"))
            raise CheckpointError(f"model: {model!r} is neither a shipped protein model ({', '.join(names)}) nor a "
                                  "file; give a name, or the path of a .ckpt or .safetensors file")
        return shipped
    return Path(model).expanduser()


def load_protein_model(model: "str | os.PathLike | ProteinNetwork | None",
                       device: str | torch.device = "cpu") -> LoadedProteinModel:
    """Resolve ``model`` (:func:`resolve_protein_model`) and load it on ``device``, reading the file once."""
    found = resolve_protein_model(model)
    if isinstance(found, ProteinNetwork):
        net = found.to(device).eval()
        arrays = [v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
                  for _, v in sorted(net.state_dict().items())]
        return LoadedProteinModel(net, "a ProteinNetwork object", {}, [repr(sorted(net.cfg.to_dict().items())), arrays])
    try:
        ck = read_protein_checkpoint(found)
        net = network_from_checkpoint(ck, device)
    except CheckpointError as exc:
        raise type(exc)(f"model: {exc}") from None
    inputs: list[Any] = [found]
    if found.suffix == ".ckpt" and found.with_name("config.yaml").is_file():
        inputs.append(found.with_name("config.yaml"))
    return LoadedProteinModel(net, str(found), ck.info, inputs)
