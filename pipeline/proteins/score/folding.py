"""Folding backends for designability, and scRMSD (Kabsch over N, CA, C).

A backend turns sequences into backbones: :class:`FoldingBackend` (``name``, ``identity()`` for cache
keys, ``fold(sequences) -> [L, 3, 3]`` N, CA, C per sequence). The one shipped is ESMFold through
transformers' ``EsmForProteinFolding``, loaded from a *local folder* with ``local_files_only=True``
(``HF_HUB_OFFLINE`` is set too): nothing is ever downloaded. The folder is checked when the backend is made (before a
run folder is opened): config.json, and weight files that are safetensors or a torch file whose pickle holds only
tensors (read as ``torch.load(weights_only=True)`` would, with the storages memory-mapped, so even GBs are checked in
a moment); a pickle that would run code is refused and nothing of it executes. Weights that hold NaN or infinite
values are refused when the model loads. Another predictor plugs in by implementing the protocol.

Designability (MultiFlow's protocol; docs/protocols.md): a backbone is designable when the smallest scRMSD
between it and the folds of its ProteinMPNN designs is below 2 Angstrom; co-design designability folds the
backbone's own sequence.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from structures.errors import InputError
from structures.proteins.residue_constants import sequence_to_indices


class FoldingBackend(Protocol):
    """Sequences -> predicted backbones."""

    name: str

    def identity(self) -> str:
        """A string that changes when the predictions can change (model files, settings)."""
        ...

    def fold(self, sequences: Sequence[str]) -> list[np.ndarray]:
        """One [L, 3, 3] array (N, CA, C, Angstrom) per sequence."""
        ...


def kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD of point sets a, b [N, 3] after optimal superposition (Kabsch, proper rotations only)."""
    a = np.asarray(a, np.float64) - np.mean(a, 0)
    b = np.asarray(b, np.float64) - np.mean(b, 0)
    u, s, vt = np.linalg.svd(a.T @ b)  # [3, 3]
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    msd = max(((a * a).sum() + (b * b).sum() - 2 * s.sum()) / len(a), 0.0)
    return float(np.sqrt(msd))


def scrmsd(backbone: np.ndarray, predicted: np.ndarray) -> float:
    """scRMSD over N, CA, C: backbone [L, >=3, 3] vs predicted [L, >=3, 3]."""
    return kabsch_rmsd(backbone[:, :3].reshape(-1, 3), predicted[:, :3].reshape(-1, 3))


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:160]


def check_weight_file(path: Path) -> None:
    """Refuse (:class:`InputError`) a weight file that is not safe to read: not a safetensors file with a valid
    header, nor a torch file whose pickle holds only tensors and plain containers (nothing is executed)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"{path}: not a readable safetensors file ({_first_line(exc)}); give the ESMFold "
                             "weights as saved by save_pretrained") from None
        return
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol is not the user's business
            warnings.simplefilter("ignore")
            try:
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # a legacy (non-zip) file cannot be memory-mapped
                if "mmap" not in str(exc):
                    raise
                torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: not a safe weights file: its pickle names Python objects other than tensors, "
                         "which could run code, so it is not read; give the weights as safetensors "
                         "(model.safetensors, save_pretrained's default)") from None
    except (OSError, RuntimeError, ValueError, EOFError, KeyError) as exc:
        raise InputError(f"{path}: not a readable torch weights file ({type(exc).__name__}: {_first_line(exc)}); "
                         "give the weights as safetensors (model.safetensors)") from None


def check_esmfold_folder(path: Path) -> None:
    """Refuse (:class:`InputError`) a folder that does not hold an ESMFold model: config.json (JSON) and weight
    files, each safe to read (:func:`check_weight_file`)."""
    import json

    if not (path / "config.json").is_file():
        raise InputError(f"{path}: no ESMFold model here (needs config.json and the weights of an "
                         "EsmForProteinFolding); nothing is downloaded")
    try:
        json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path / 'config.json'}: not a JSON model config ({_first_line(exc)}); give the folder "
                         "written by EsmForProteinFolding.save_pretrained") from None
    weights = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not weights:
        raise InputError(f"{path}: no ESMFold weights here (model.safetensors or pytorch_model.bin beside "
                         "config.json); nothing is downloaded")
    for p in weights:
        if not p.is_file():
            raise InputError(f"{p}: not a regular file (a folder, a dangling link or a special file); give the "
                             "weight files themselves")
        check_weight_file(p)


class EsmFoldBackend:
    """ESMFold (transformers ``EsmForProteinFolding``) from a local folder, on the CPU unless ``device``."""

    name = "esmfold"

    def __init__(self, path: str | os.PathLike, num_recycles: int | None = None, device: str = "cpu"):
        self.path = Path(path).expanduser()
        check_esmfold_folder(self.path)
        self.num_recycles = num_recycles
        self.device = device
        self._model = None

    def identity(self) -> str:
        """config.json's bytes and the names and sizes of the weight files (hashing GBs each run is too slow)."""
        from structures.cache import cache_key

        files = sorted(p for p in self.path.iterdir() if p.is_file())
        parts = [(self.path / "config.json").read_text()] + [f"{p.name}:{p.stat().st_size}" for p in files]
        return f"esmfold:{cache_key(parts)}:recycles={self.num_recycles}"

    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from transformers import EsmForProteinFolding
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            try:
                m = EsmForProteinFolding.from_pretrained(str(self.path), local_files_only=True)
            except pickle.UnpicklingError:  # never quote torch's advice to load unsafely
                raise InputError(f"{self.path}: not a safe weights file (its pickle names objects other than "
                                 "tensors); give the weights as safetensors") from None
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: cannot load ESMFold ({type(exc).__name__}: "
                                 f"{_first_line(exc)})") from None
            from pipeline.common.model_file import check_finite

            check_finite(m.state_dict(), str(self.path))
            m.trunk.set_chunk_size(64) if hasattr(m, "trunk") else None
            self._model = m.float().to(self.device).eval()
        return self._model

    def fold(self, sequences: Sequence[str]) -> list[np.ndarray]:
        import torch

        model = self.model()
        out = []
        for seq in sequences:  # one at a time: lengths differ and memory grows with L^2
            aatype = torch.as_tensor(sequence_to_indices(seq), device=self.device)[None]  # [1, L] AF2 order
            with torch.no_grad():
                res = model(aatype, num_recycles=self.num_recycles)
            pos = res.positions[-1, 0, :, :3].detach().cpu().numpy()  # [L, 3, 3] atom14 N, CA, C
            out.append(pos.astype(np.float64))
        return out


def fold_backend(path: str | os.PathLike | None, num_recycles: int | None = None) -> FoldingBackend | None:
    """The ESMFold backend of a local folder, or None (designability unavailable)."""
    return None if path is None else EsmFoldBackend(path, num_recycles=num_recycles)
