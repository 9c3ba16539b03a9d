"""Model files: a genmatch model as safetensors, tensors plus a JSON record, never pickled Python objects.

Vocabulary (one meaning per word): a **model file** (``.safetensors``, this module) is what training exports,
what ``generate --model`` reads and what ``pipeline/models/`` ships; a **checkpoint** is a training run's resume
state (Lightning's ``OUT/lightning/last.ckpt``, :mod:`pipeline.common.training`) or a MultiFlow release
(``.ckpt``, read without unpickling by :mod:`pipeline.proteins.network.checkpoint`).

A model file holds the model's ``state_dict`` and, in the safetensors header's metadata, one JSON document
(``genmatch.record``) with everything needed to rebuild and audit the model: the network config, the data set and
its content hash, the code version, the training curve.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from structures.atomic import atomic_path
from structures.errors import InputError

RECORD_KEY = "genmatch.record"
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"  # the shipped models (package data)
FORMAT_VERSION = 1


@dataclass
class ModelFile:
    """A model's tensors and its JSON-serialisable record."""

    state_dict: dict[str, torch.Tensor]
    record: dict[str, Any] = field(default_factory=dict)


def save_model_file(path: str | os.PathLike, ckpt: ModelFile) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temp file + rename). Tensors are stored contiguous."""
    path = Path(path)
    record = {"format_version": FORMAT_VERSION, **ckpt.record}
    tensors = {k: v.detach().contiguous().cpu() for k, v in ckpt.state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={RECORD_KEY: json.dumps(record, sort_keys=True)})
    return path


def ship_model_file(source: str | os.PathLike, out: str | os.PathLike, updates: Mapping[str, Any]) -> Path:
    """Copy a trained model's tensors unchanged and its record with ``updates`` (e.g. ``status``,
    ``evaluation``; a value None removes the key) to ``out`` (atomically), plus a readable ``.json`` copy of
    the record beside it."""
    from pipeline.common.io import write_text

    ck = load_model_file(source)
    record = {k: v for k, v in ck.record.items() if k != "format_version"}
    for key, value in updates.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    path = save_model_file(out, ModelFile(state_dict=ck.state_dict, record=record))
    write_text(path.with_suffix(".json"), json.dumps(load_model_file(path).record, indent=1, sort_keys=True) + "\n")
    return path


def load_model_file(path: str | os.PathLike, device: str | torch.device = "cpu") -> ModelFile:
    """Read a checkpoint written by :func:`save_model_file` (no unpickling, ever); weights that are not all finite
    are refused (:func:`check_finite`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}; give the path of a .safetensors file")
    try:
        state = load_file(str(path), device=str(device))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        record = json.loads(meta[RECORD_KEY]) if RECORD_KEY in meta else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a genmatch safetensors checkpoint ({first}); give a file written by "
                         "'genmatch train'") from None
    if not isinstance(record, dict) or not isinstance(record.get("format_version", FORMAT_VERSION), int):
        raise InputError(f"{path}: the checkpoint record is malformed; give a file written by 'genmatch train'")
    if record.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise InputError(f"{path}: checkpoint format {record['format_version']} is newer than this "
                         f"genmatch understands ({FORMAT_VERSION}); upgrade genmatch")
    check_finite(state, str(path))
    return ModelFile(state_dict=state, record=record)


class NonFiniteWeightsError(InputError):
    """A model file whose weights hold NaN or infinite values."""


def check_finite(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse (:class:`InputError`) weights with a NaN or infinite value, naming the file and the first such
    tensor: a model that would sample garbage or crash halfway is stopped when it is read."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise NonFiniteWeightsError(f"{source}: tensor {name!r} holds {bad} NaN or infinite value(s) of "
                                 f"{tensor.numel()}; the weights are damaged, give a model file with finite weights")


def _grouped(keys: list[str], max_items: int) -> str:
    """'trunk.ipa_2.* (16), trunk.ipa_ln_2.* (2), ...': keys grouped by module (first two name parts)."""
    groups: dict[str, int] = {}
    for k in keys:
        groups[".".join(k.split(".")[:2])] = groups.get(".".join(k.split(".")[:2]), 0) + 1
    items = [f"{g}.* ({n})" if n > 1 or g not in keys else g for g, n in groups.items()]
    return ", ".join(items[:max_items]) + (", ..." if len(items) > max_items else "")


def state_dict_mismatch(net: torch.nn.Module, state: Mapping[str, torch.Tensor], max_items: int = 4) -> str:
    """'' if ``state`` fits ``net`` exactly (names and shapes), else a one-line description."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = [f"{len(missing)} missing ({_grouped(missing, max_items)})" if missing else "",
             f"{len(unexpected)} unexpected ({_grouped(unexpected, max_items)})" if unexpected else "",
             (f"{len(wrong)} wrong-shape, file vs network ({', '.join(wrong[:max_items])}"
              f"{', ...' if len(wrong) > max_items else ''})") if wrong else ""]
    return "; ".join(p for p in parts if p)


def load_state_dict_checked(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                            expected: str = "") -> None:
    """``module.load_state_dict(state_dict, strict=True)`` after checking names and shapes first.

    Raises :class:`InputError` naming the first few missing, unexpected and wrong-shape tensors
    (:func:`state_dict_mismatch`) and the config the module was built from (``expected``), instead
    of torch's multi-line dump.
    """
    problem = state_dict_mismatch(module, state_dict)
    if problem:
        hint = f"; the network was built for {expected}" if expected else ""
        raise InputError(f"{source}: weights do not match the network: {problem}{hint}")
    module.load_state_dict(state_dict, strict=True)
