"""Protein backbone data sets for training: the packed npz set or any folder of PDB / mmCIF files.

- :class:`ProteinDataset` (a torch Dataset): items are :class:`ProteinExample` (backbone atoms
  N, CA, C, O centred on the CA centroid, amino-acid indices); :meth:`ProteinDataset.collate`
  pads them into a :class:`ProteinBatch` with a residue mask.
- Filters (folders, :class:`ChainFilter`): length range, chain breaks (C_i-N_{i+1} > 2 Angstrom, a numbering gap does
  not count when the peptide bond is intact, so cis peptides stay), standard residues only,
  complete N/CA/C. A missing carbonyl O is rebuilt from the frames (:func:`structures.proteins.frames.place_oxygen`).
  Every rejected chain is kept in ``rejected`` with its reason. A parsed folder is cached as an
  npz under :func:`structures.cache.cache_dir` (key: every file's bytes and the filter settings).
- :class:`LengthBucketBatchSampler`: batches of similar length under a padded-residue budget.
- :meth:`ProteinDataset.split`: train / validation split on *groups*, so near-identical chains
  never straddle it (same entry or k-mer containment >= 0.3 at k = 5: :mod:`structures.proteins.similarity`).
  The npz set is already clustered at 30 % identity with MMseqs2, so for it this step only
  joins chains of the same PDB entry.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from structures.atomic import atomic_savez
from structures.cache import cache_dir, cache_key, file_sha256
from structures.data import ProteinBackboneSet, load_proteins
from structures.ids import safe_id
from structures.proteins.frames import Frames, frames_from_atoms, place_oxygen
from structures.proteins.checks import check_chain, file_problem
from structures.proteins.inputs import is_structure_name
from structures.proteins.io import FORMATS, StructureFileError, read_chains
from structures.proteins.residue_constants import UNK_INDEX, sequence_to_indices
from structures.proteins.similarity import grouped_split, kmer_matrix, similarity_groups  # noqa: F401 (re-exported)
from structures.validate import check_bool, check_float, check_instance, check_int

FOLDER_CACHE_FORMAT = 3  # bump when the cached arrays change meaning (2: AF2 residue order, 3: checked chains)


def sequence_to_aatype(seq: str) -> np.ndarray:
    """One-letter sequence -> [L] int64 indices in the AF2 order ``ARNDCQEGHILKMFPSTWYV`` (20 = unknown)."""
    return sequence_to_indices(seq)


@dataclass(frozen=True)
class ChainFilter:
    """Which chains of a folder of structure files :meth:`ProteinDataset.from_directory` keeps: a length in
    ``[min_length, max_length]`` (``None``: no upper bound), no chain break unless ``allow_chain_breaks`` (a
    C_i-N_{i+1} distance above ``max_c_n`` Angstrom), standard residues only when ``standard_only``, and only
    chain ``chain`` of every file when it is given (default: every chain, split)."""

    min_length: int = 40
    max_length: int | None = 512
    allow_chain_breaks: bool = False
    standard_only: bool = True
    chain: str | None = None
    max_c_n: float = 2.0  # Angstrom

    def __post_init__(self) -> None:
        check_int("ChainFilter.min_length", self.min_length, 1)
        if self.max_length is not None:
            check_int("ChainFilter.max_length", self.max_length, 1)
        check_bool("ChainFilter.allow_chain_breaks", self.allow_chain_breaks)
        check_bool("ChainFilter.standard_only", self.standard_only)
        if self.chain is not None:
            check_instance("ChainFilter.chain", self.chain, str, "a chain id (str) or None")
        check_float("ChainFilter.max_c_n", self.max_c_n, 0.0, strict_minimum=True)


@dataclass
class ProteinExample:
    """One chain: ``atoms`` [L, 4, 3] (N, CA, C, O; Angstrom, CA centroid at 0), ``aatype`` [L] (AF2 order,
    :mod:`structures.proteins.residue_constants`; 20 = unknown)."""

    name: str
    atoms: torch.Tensor  # [L, 4, 3] float32
    aatype: torch.Tensor  # [L] int64
    residue_index: torch.Tensor  # [L] int64


@dataclass
class ProteinBatch:
    """Padded batch: ``atoms`` [B, N, 4, 3], ``aatype`` [B, N], ``res_mask`` [B, N] bool."""

    names: list[str]
    atoms: torch.Tensor  # [B, N, 4, 3]
    aatype: torch.Tensor  # [B, N]
    residue_index: torch.Tensor  # [B, N]
    res_mask: torch.Tensor  # [B, N] bool
    lengths: torch.Tensor  # [B]

    def frames(self) -> Frames:
        """Residue frames (rots [B, N, 3, 3], trans [B, N, 3]); padded residues get identity-like junk."""
        return frames_from_atoms(self.atoms)


@dataclass(eq=False)
class ProteinDataset(Dataset):
    """Chains of a :class:`ProteinBackboneSet`, optionally a subset (``indices``)."""

    backbones: ProteinBackboneSet
    indices: np.ndarray | None = None  # [C'] chain indices into backbones
    rejected: dict[str, str] = field(default_factory=dict)  # chain name -> reason (folders)

    def __post_init__(self) -> None:
        if self.indices is None:
            self.indices = np.arange(len(self.backbones))
        self.indices = np.asarray(self.indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def lengths(self) -> np.ndarray:  # [C']
        return self.backbones.lengths[self.indices]

    @property
    def names(self) -> list[str]:
        b = self.backbones
        return [f"{b.pdb_id[i]}_{b.chain_id[i]}" for i in self.indices]

    @property
    def sequences(self) -> list[str]:
        return [self.backbones[int(i)].sequence for i in self.indices]

    def __getitem__(self, i: int) -> ProteinExample:
        chain = self.backbones[int(self.indices[i])]
        x = torch.from_numpy(np.ascontiguousarray(chain.coords, dtype=np.float32))
        x = x - x[:, 1].mean(0)  # centre on the CA centroid
        return ProteinExample(name=chain.name, atoms=x, aatype=torch.from_numpy(sequence_to_aatype(chain.sequence)),
                              residue_index=torch.arange(len(chain), dtype=torch.long) + chain.start_resnum)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ProteinDataset":
        """Entries ``indices`` of this data set (positions in it, not chain ids)."""
        return ProteinDataset(self.backbones, self.indices[np.asarray(indices, dtype=np.int64)], self.rejected)

    @staticmethod
    def collate(items: Sequence[ProteinExample]) -> ProteinBatch:
        """Pad examples to the longest one (a DataLoader ``collate_fn``)."""
        lengths = torch.tensor([len(x.aatype) for x in items])
        b, n = len(items), int(lengths.max())
        atoms = torch.zeros(b, n, 4, 3)
        aatype = torch.full((b, n), UNK_INDEX, dtype=torch.long)
        resid = torch.zeros(b, n, dtype=torch.long)
        mask = torch.arange(n)[None, :] < lengths[:, None]
        for j, x in enumerate(items):
            L = len(x.aatype)
            atoms[j, :L], aatype[j, :L], resid[j, :L] = x.atoms, x.aatype, x.residue_index
        return ProteinBatch([x.name for x in items], atoms, aatype, resid, mask, lengths)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_npz(cls, path: str | os.PathLike | None = None, min_length: int = 1,
                 max_length: int | None = None) -> "ProteinDataset":
        """The packed npz set (default: the ``proteins`` data set), filtered by length."""
        bb = load_proteins(path)
        keep = (bb.lengths >= min_length) & (bb.lengths <= (max_length or np.iinfo(np.int64).max))
        return cls(bb, np.flatnonzero(keep))

    @classmethod
    def from_directory(cls, folder: str | os.PathLike, filters: ChainFilter = ChainFilter(), progress: bool = True,
                       cache: bool | str | os.PathLike = True) -> "ProteinDataset":
        """All protein chains of the PDB / mmCIF files in ``folder`` (recursively) that pass
        :func:`~structures.proteins.checks.check_chain` and ``filters``; the others, and entries that are not
        regular files (never opened), are listed in ``rejected`` with their reason.

        Args:
            cache: reuse / write the parsed set under :func:`structures.cache.cache_dir` (True), a
                folder, or not at all (False). The key covers every file's path and bytes and
                the filter settings.
        """
        from tqdm import tqdm

        folder = Path(folder)
        if not folder.is_dir():
            raise StructureFileError(f"{folder}: not a directory")
        entries = sorted(p for p in folder.rglob("*") if is_structure_name(p))
        problems = {p: file_problem(p) for p in entries}  # fifos, folders, dangling links: rejected, never opened
        special = {p.name: f"{p}: {m}" for p, m in problems.items() if m is not None}
        files = [p for p, m in problems.items() if m is None]
        if not files:
            raise StructureFileError(f"{folder}: no PDB / mmCIF files ({', '.join(FORMATS)}, optionally .gz)")
        cache_path = None
        if cache is not False:
            f = filters  # the same settings string as before ChainFilter: existing cache entries stay valid
            settings = (f"v{FOLDER_CACHE_FORMAT}-{f.min_length}-{f.max_length}-{f.allow_chain_breaks}-"
                        f"{f.standard_only}-{f.chain}-{f.max_c_n}")
            names = [os.fsencode(p.relative_to(folder)).decode("utf-8", "backslashreplace") for p in files]
            key = cache_key([settings] + [f"{n}:{file_sha256(p)}" for n, p in zip(names, files)])
            root = cache_dir() if cache is True else Path(cache)
            cache_path = root / "protein_folders" / f"{safe_id(folder.name)}-{key}.npz"
            if cache_path.is_file():
                try:
                    return cls._load_cache(cache_path)
                except (OSError, ValueError, KeyError):
                    pass  # unreadable cache entry: rebuild it
        rejected: dict[str, str] = dict(special)
        coords, seqs, pdb_ids, chain_ids, starts = [], [], [], [], []
        for path in tqdm(files, desc=f"reading {folder.name}", unit="file", disable=not progress):
            try:
                chains = read_chains(path)
            except StructureFileError as exc:
                rejected[path.name] = str(exc)
                continue
            for c in chains:
                if filters.chain is not None and c.chain_id != filters.chain:
                    continue
                reason = check_chain(c).problem or _reject_reason(c, filters)
                if reason:
                    rejected[c.name] = reason
                    continue
                x = c.coords.astype(np.float32).copy()  # [L, 4, 3]
                if not c.atom_mask[:, 3].all():  # rebuild missing carbonyl O from the backbone
                    t = torch.from_numpy(x.astype(np.float64))
                    has_next = torch.from_numpy(np.r_[~c.chain_breaks(filters.max_c_n), False])
                    o = place_oxygen(t[:, 0], t[:, 1], t[:, 2], has_next=has_next).numpy()
                    miss = ~c.atom_mask[:, 3]
                    x[miss, 3] = o[miss]
                x -= x[:, 1].mean(0)
                coords.append(x)
                seqs.append(c.sequence)
                pdb_ids.append(safe_id(path.name.split(".")[0]))
                chain_ids.append(c.chain_id)
                starts.append(int(c.res_ids[0]))
        if not coords:
            raise StructureFileError(f"{folder}: no chain passed the filters ({len(rejected)} rejected, e.g. "
                                     f"{next(iter(rejected.items()), ('', ''))}); relax the ChainFilter's "
                                     "min_length/max_length/allow_chain_breaks/standard_only")
        lengths = np.array([len(s) for s in seqs])
        seq = "".join(seqs).encode("ascii")
        bb = ProteinBackboneSet(
            coords=np.concatenate(coords), offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64),
            sequence=np.frombuffer(seq, dtype=np.uint8).copy(), dssp=np.full(len(seq), ord("-"), dtype=np.uint8),
            pdb_id=np.array(pdb_ids), chain_id=np.array(chain_ids), start_resnum=np.array(starts, dtype=np.int32),
            source=folder,
        )
        ds = cls(bb, None, rejected)
        if cache_path is not None:
            ds._save_cache(cache_path)
        return ds

    def _save_cache(self, path: Path) -> None:
        b = self.backbones
        atomic_savez(path, coords=b.coords, offsets=b.offsets, sequence=b.sequence, dssp=b.dssp, pdb_id=b.pdb_id,
                     chain_id=b.chain_id, start_resnum=b.start_resnum,
                     meta=np.array(json.dumps({"format": FOLDER_CACHE_FORMAT, "source": str(b.source),
                                               "rejected": self.rejected})))

    @classmethod
    def _load_cache(cls, path: Path) -> "ProteinDataset":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FOLDER_CACHE_FORMAT:
                raise ValueError(f"{path}: cache format {meta.get('format')}")
            bb = ProteinBackboneSet(coords=z["coords"], offsets=z["offsets"], sequence=z["sequence"], dssp=z["dssp"],
                                    pdb_id=z["pdb_id"], chain_id=z["chain_id"], start_resnum=z["start_resnum"],
                                    source=Path(meta["source"]))
        return cls(bb, None, meta["rejected"])

    # ------------------------------------------------------------------ splitting

    def split(self, val_fraction: float = 0.1, seed: int = 0, k: int = 5,
              threshold: float = 0.3) -> tuple["ProteinDataset", "ProteinDataset"]:
        """Train / validation split over similarity groups (see the module docstring)."""
        entries = [str(self.backbones.pdb_id[i]) for i in self.indices]
        labels = similarity_groups(self.sequences, k=k, threshold=threshold, entries=entries)
        train, val = grouped_split(labels, val_fraction, seed)
        return self.subset(train), self.subset(val)


def _reject_reason(c, f: ChainFilter) -> str | None:
    L = len(c)
    if L < f.min_length or (f.max_length is not None and L > f.max_length):
        return f"length {L} outside [{f.min_length}, {f.max_length}]"
    if f.standard_only and not c.standard.all():
        bad = sorted({n for n, ok in zip(c.res_names, c.standard) if not ok})
        return f"non-standard residues {', '.join(bad[:5])}"
    if not f.allow_chain_breaks and c.chain_breaks(f.max_c_n).any():
        i = int(np.flatnonzero(c.chain_breaks(f.max_c_n))[0])
        return f"chain break after residue {c.res_ids[i]}{c.ins_codes[i]} (C-N > {f.max_c_n} Angstrom)"
    return None


# ---------------------------------------------------------------------------------------------
# Length-bucketed batching
# ---------------------------------------------------------------------------------------------


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of chains of similar length.

    Each epoch: shuffle (seeded by ``seed + epoch``), sort by length (stable, so equal lengths stay
    shuffled), cut into batches whose padded size ``len(batch) * max length`` stays within
    ``max_residues`` (and at most ``max_batch_size`` chains), then shuffle the batch order.
    ``num_replicas`` / ``rank`` give each data-parallel worker every ``num_replicas``-th batch.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, max_residues: int = 8192, max_batch_size: int = 256,
                 shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) and self.lengths.max() > max_residues:
            raise ValueError(f"a chain of {self.lengths.max()} residues exceeds max_residues={max_residues}")
        self.max_residues, self.max_batch_size = max_residues, max_batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.num_replicas, self.rank = num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        idx = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        idx = idx[np.argsort(self.lengths[idx], kind="stable")]
        batches, cur, cur_max = [], [], 0
        for i in idx.tolist():
            m = max(cur_max, int(self.lengths[i]))
            if cur and ((len(cur) + 1) * m > self.max_residues or len(cur) >= self.max_batch_size):
                batches.append(cur)
                cur, m = [], int(self.lengths[i])
            cur.append(i)
            cur_max = m
        if cur:
            batches.append(cur)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches[self.rank:: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


def padded_fraction(batches: Sequence[Sequence[int]], lengths: np.ndarray) -> float:
    """Share of padded positions over all batches (0 = no padding)."""
    total = sum(len(b) * int(lengths[b].max()) for b in batches)
    real = sum(int(lengths[b].sum()) for b in batches)
    return 1.0 - real / total if total else math.nan
