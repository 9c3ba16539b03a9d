"""Training data for the protein trainer: chains -> length-bucketed, cropped batches of clean frames.

A data set is the embedded backbone set (``proteins``), an npz of its schema, or a folder of PDB / mmCIF
files (:class:`structures.proteins.dataset.ProteinDataset`). Chains outside ``[min_length, max_length]``
are dropped; the rest are split on near-identity groups; a chain longer than ``crop`` is cut to a
contiguous window (random for training, the centre one for validation). Batches are
:class:`~pipeline.proteins.train.interpolant.ProteinTarget`: C-alpha translations centred on the (cropped)
chain's centroid, AF2 Gram-Schmidt frames, amino acids.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.proteins.train.interpolant import ProteinTarget
from structures.cache import file_sha256
from structures.errors import InputError
from structures.proteins.checks import file_problem
from structures.proteins.frames import frames_from_atoms
from structures.proteins.dataset import ChainFilter, LengthBucketBatchSampler, ProteinDataset, ProteinExample
from structures.proteins.inputs import is_structure_name
from structures.proteins.io import StructureFileError

if TYPE_CHECKING:
    from pipeline.proteins.train.trainer import ProteinTrainConfig


def dataset_files(dataset: str) -> list[Path]:
    """The files a data set is read from (their bytes key the run); InputError / DataNotFoundError if absent."""
    from structures.data import resolve_dataset

    if dataset == "proteins":
        return [Path(resolve_dataset("proteins"))]
    path = Path(dataset)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"{path}: empty folder; give a folder of PDB / mmCIF files")
        return files
    problem = file_problem(path) if os.path.lexists(path) else "not found"
    if problem is not None:  # a fifo, a dangling link, ...: never opened
        raise InputError(f"training data {path}: {problem}; give 'proteins' (the embedded backbone set), an npz "
                         "of its schema or a folder of PDB / mmCIF files")
    if is_structure_name(path):
        raise InputError(f"training data {path}: one structure file; put it (and the others) in a folder and give "
                         "the folder")
    return [path]


def load_chains(dataset: str, min_length: int, max_length: int | None) -> ProteinDataset:
    """The chains of a data set within the length range; InputError when it cannot be read."""
    from structures.data import DataNotFoundError

    path = None if dataset == "proteins" else Path(dataset)
    try:
        if path is not None and path.is_dir():
            return ProteinDataset.from_directory(path, ChainFilter(min_length, max_length), progress=False)
        return ProteinDataset.from_npz(path, min_length=min_length, max_length=max_length)
    except DataNotFoundError:
        raise
    except (StructureFileError, ValueError, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{dataset}: cannot read the protein training data ({first})") from None


def crop_window(length: int, crop: int | None, rng: np.random.Generator | None) -> tuple[int, int]:
    """[start, stop) of a contiguous window of at most ``crop`` residues: random with ``rng``, else centred."""
    if crop is None or length <= crop:
        return 0, length
    start = int(rng.integers(0, length - crop + 1)) if rng is not None else (length - crop) // 2
    return start, start + crop


class CroppedChains(Dataset):
    """Chains of a :class:`ProteinDataset`, each cut to a window of at most ``crop`` residues."""

    def __init__(self, chains: ProteinDataset, crop: int | None, random_crop: bool, seed: int = 0) -> None:
        self.chains, self.crop, self.random_crop = chains, crop, random_crop
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.chains)

    @property
    def lengths(self) -> np.ndarray:  # [C] lengths after cropping
        return np.minimum(self.chains.lengths, self.crop) if self.crop else self.chains.lengths

    def __getitem__(self, i: int) -> ProteinExample:
        x = self.chains[i]
        a, b = crop_window(len(x.aatype), self.crop, self.rng if self.random_crop else None)
        return ProteinExample(x.name, x.atoms[a:b], x.aatype[a:b], x.residue_index[a:b])


def collate_target(items: Sequence[ProteinExample]) -> ProteinTarget:
    """Pad chains into a :class:`ProteinTarget`: frames from N, CA, C; CA centred per chain; padding x = 0, R = I."""
    batch = ProteinDataset.collate(items)
    mask = batch.res_mask  # [B, N]
    frames = frames_from_atoms(batch.atoms)  # rots [B, N, 3, 3], trans [B, N, 3]
    m = mask.to(torch.float32)[..., None]
    centre = (frames.trans * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    rots = torch.where(mask[..., None, None], frames.rots, torch.eye(3))
    return ProteinTarget(trans_1=(frames.trans - centre) * m, rotmats_1=rots, aatypes_1=batch.aatype, res_mask=mask)


class EvenBucketSampler(LengthBucketBatchSampler):
    """Length buckets (:class:`LengthBucketBatchSampler`) dealt to DDP ranks in equal numbers (the last
    ``len % num_replicas`` batches of an epoch are dropped), so every rank takes the same number of steps."""

    def __init__(self, lengths: np.ndarray, max_residues: int, max_batch_size: int, shuffle: bool, seed: int,
                 num_replicas: int = 1, rank: int = 0, even: bool = True) -> None:
        super().__init__(lengths, max_residues, max_batch_size, shuffle, seed, num_replicas=1, rank=0)
        self.replicas, self.my_rank, self.even = num_replicas, rank, even

    def _batches(self) -> list[list[int]]:
        batches = super()._batches()
        if self.even:
            batches = batches[: len(batches) - len(batches) % self.replicas]
        return batches[self.my_rank:: self.replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())


class ProteinDataModule(L.LightningDataModule):
    """Grouped train / validation split of one protein data set, with length-bucketed loaders."""

    def __init__(self, cfg: "ProteinTrainConfig") -> None:
        super().__init__()
        self.cfg = cfg
        chains = load_chains(cfg.dataset, cfg.min_length, cfg.max_length)
        if cfg.limit is not None:
            chains = chains.subset(np.arange(min(cfg.limit, len(chains))))
        if len(chains) < 2:
            raise InputError(f"{cfg.dataset}: {len(chains)} chains of length {cfg.min_length}-{cfg.max_length}; "
                             "training needs at least 2 (widen --min-length / --max-length)")
        self.train_set, self.val_set = chains.split(cfg.val_fraction, cfg.seed)
        if len(self.val_set) == 0 or len(self.train_set) == 0:
            raise InputError(f"{cfg.dataset}: the grouped split left an empty side ({len(self.train_set)} train, "
                             f"{len(self.val_set)} validation chains); change --val-fraction or use more chains")
        files = dataset_files(cfg.dataset)
        self.info: dict[str, Any] = {
            "name": "proteins" if cfg.dataset == "proteins" else Path(cfg.dataset).name,
            "files": len(files), "sha256": file_sha256(files[0]) if len(files) == 1 else None,
            "n_chains": len(chains), "n_train": len(self.train_set), "n_val": len(self.val_set),
            "length_range": [cfg.min_length, cfg.max_length], "crop": cfg.crop,
            "mean_length": float(np.mean(chains.lengths)),
            "split": "near-identity groups (structures.proteins.dataset.ProteinDataset.split)"}

    def _loader(self, chains: ProteinDataset, train: bool) -> DataLoader:
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        data = CroppedChains(chains, self.cfg.crop, random_crop=train, seed=self.cfg.seed + 7919 * rank)
        sampler = EvenBucketSampler(data.lengths, self.cfg.max_residues, self.cfg.max_batch_size, shuffle=train,
                                    seed=self.cfg.seed, num_replicas=world, rank=rank, even=train)
        return DataLoader(data, batch_sampler=sampler, collate_fn=collate_target)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)
