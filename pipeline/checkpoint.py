"""Checkpoints as safetensors: tensors plus a JSON record, never pickled Python objects.

A checkpoint file holds the model's ``state_dict`` and, in the safetensors header's metadata, one
JSON document (``genmatch.record``) with everything needed to rebuild and audit the model: the
network config, the data set and its content hash, the code version, the training curve.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from structures.atomic import atomic_path

RECORD_KEY = "genmatch.record"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A model's tensors and its JSON-serialisable record."""

    state_dict: dict[str, torch.Tensor]
    record: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` atomically (temp file + rename). Tensors are stored contiguous."""
    path = Path(path)
    record = {"format_version": FORMAT_VERSION, **ckpt.record}
    tensors = {k: v.detach().contiguous().cpu() for k, v in ckpt.state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={RECORD_KEY: json.dumps(record, sort_keys=True)})
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (no unpickling, ever)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = load_file(str(path), device=str(device))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a safetensors checkpoint ({exc})") from exc
    record = json.loads(meta[RECORD_KEY]) if RECORD_KEY in meta else {}
    if record.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {record['format_version']} is newer than this "
                         f"genmatch understands ({FORMAT_VERSION}); upgrade genmatch")
    return Checkpoint(state_dict=state, record=record)
