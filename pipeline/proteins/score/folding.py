"""Folding backends for designability, and scRMSD (Kabsch over N, CA, C).

A backend turns sequences into backbones: :class:`FoldingBackend` (``name``, ``identity()`` for cache
keys, ``fold(sequences) -> [L, 3, 3]`` N, CA, C per sequence). The one shipped is ESMFold through
transformers' ``EsmForProteinFolding``, loaded from a *local folder* with ``local_files_only=True``
(``HF_HUB_OFFLINE`` is set too): nothing is ever downloaded. Another predictor plugs in by implementing
the protocol.

Designability (MultiFlow's protocol; docs/protocols.md): a backbone is designable when the smallest scRMSD
between it and the folds of its ProteinMPNN designs is below 2 Angstrom; co-design designability folds the
backbone's own sequence.
"""

from __future__ import annotations

import os
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


class EsmFoldBackend:
    """ESMFold (transformers ``EsmForProteinFolding``) from a local folder, on the CPU unless ``device``."""

    name = "esmfold"

    def __init__(self, path: str | os.PathLike, num_recycles: int | None = None, device: str = "cpu"):
        self.path = Path(path).expanduser()
        if not (self.path / "config.json").is_file():
            raise InputError(f"{self.path}: no ESMFold model here (needs config.json and the weights of an "
                             "EsmForProteinFolding); nothing is downloaded")
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
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: cannot load ESMFold ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160]})") from None
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
