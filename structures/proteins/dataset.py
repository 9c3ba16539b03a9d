"""Protein backbone data sets for training: the packed npz set or any folder of PDB / mmCIF files.

- :class:`ProteinDataset` (a torch Dataset): items are :class:`ProteinExample` (backbone atoms
  N, CA, C, O centred on the CA centroid, amino-acid indices); :meth:`ProteinDataset.collate`
  pads them into a :class:`ProteinBatch` with a residue mask.
- Filters (folders): length range, chain breaks (C_i-N_{i+1} > 2 Angstrom, a numbering gap does
  not count when the peptide bond is intact, so cis peptides stay), standard residues only,
  complete N/CA/C. A missing carbonyl O is rebuilt from the frames (:func:`structures.proteins.frames.place_oxygen`).
  Every rejected chain is kept in ``rejected`` with its reason. A parsed folder is cached as an
  npz under :func:`structures.cache.cache_dir` (key: every file's bytes and the filter settings).
- :class:`LengthBucketBatchSampler`: batches of similar length under a padded-residue budget.
- :meth:`ProteinDataset.split`: train / validation split on *groups*, so near-identical chains
  never straddle it. Groups are connected components of the graph linking two chains when

    1. they come from the same entry (PDB id / file), or
    2. their k-mer containment |K(a) n K(b)| / min(|K(a)|, |K(b)|) >= threshold (k = 5,
       threshold 0.3 by default). Under ungapped substitution at identity p a k-mer survives
       with probability p^k, so 0.3 at k = 5 links chains of roughly >= 80 % identity
       (0.95 -> 0.77, 0.9 -> 0.59, 0.8 -> 0.33, 0.5 -> 0.03); identical sequences always link.

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
from structures.proteins.frames import Frames, frames_from_atoms, place_oxygen
from structures.proteins.io import FORMATS, StructureFileError, read_chains
from structures.proteins.residue_constants import UNK_INDEX, sequence_to_indices

FOLDER_CACHE_FORMAT = 2  # bump when the cached arrays change meaning (2: AF2 residue order)


def sequence_to_aatype(seq: str) -> np.ndarray:
    """One-letter sequence -> [L] int64 indices in the AF2 order ``ARNDCQEGHILKMFPSTWYV`` (20 = unknown)."""
    return sequence_to_indices(seq)


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
    def from_directory(cls, folder: str | os.PathLike, min_length: int = 40, max_length: int | None = 512,
                       allow_chain_breaks: bool = False, standard_only: bool = True, chain: str | None = None,
                       max_c_n: float = 2.0, progress: bool = True,
                       cache: bool | str | os.PathLike = True) -> "ProteinDataset":
        """All protein chains of the PDB / mmCIF files in ``folder`` (recursively) that pass the filters.

        Args:
            chain: keep only this chain id of every file (default: all chains, split).
            max_c_n: C_i-N_{i+1} distance (Angstrom) above which residues i, i+1 are a break.
            cache: reuse / write the parsed set under :func:`structures.cache.cache_dir` (True), a
                folder, or not at all (False). The key covers every file's path and bytes and
                the filter settings.
        """
        from tqdm import tqdm

        folder = Path(folder)
        if not folder.is_dir():
            raise StructureFileError(f"{folder}: not a directory")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_structure_file(p))
        if not files:
            raise StructureFileError(f"{folder}: no PDB / mmCIF files ({', '.join(FORMATS)}, optionally .gz)")
        cache_path = None
        if cache is not False:
            settings = f"v{FOLDER_CACHE_FORMAT}-{min_length}-{max_length}-{allow_chain_breaks}-{standard_only}-{chain}-{max_c_n}"
            key = cache_key([settings] + [f"{p.relative_to(folder)}:{file_sha256(p)}" for p in files])
            cache_path = (cache_dir() if cache is True else Path(cache)) / "protein_folders" / f"{folder.name}-{key}.npz"
            if cache_path.is_file():
                try:
                    return cls._load_cache(cache_path)
                except (OSError, ValueError, KeyError):
                    pass  # unreadable cache entry: rebuild it
        rejected: dict[str, str] = {}
        coords, seqs, pdb_ids, chain_ids, starts = [], [], [], [], []
        for path in tqdm(files, desc=f"reading {folder.name}", unit="file", disable=not progress):
            try:
                chains = read_chains(path)
            except StructureFileError as exc:
                rejected[path.name] = str(exc)
                continue
            for c in chains:
                if chain is not None and c.chain_id != chain:
                    continue
                reason = _reject_reason(c, min_length, max_length, allow_chain_breaks, standard_only, max_c_n)
                if reason:
                    rejected[c.name] = reason
                    continue
                x = c.coords.astype(np.float32).copy()  # [L, 4, 3]
                if not c.atom_mask[:, 3].all():  # rebuild missing carbonyl O from the backbone
                    t = torch.from_numpy(x.astype(np.float64))
                    has_next = torch.from_numpy(np.r_[~c.chain_breaks(max_c_n), False])
                    o = place_oxygen(t[:, 0], t[:, 1], t[:, 2], has_next=has_next).numpy()
                    miss = ~c.atom_mask[:, 3]
                    x[miss, 3] = o[miss]
                x -= x[:, 1].mean(0)
                coords.append(x)
                seqs.append(c.sequence)
                pdb_ids.append(path.name.split(".")[0])
                chain_ids.append(c.chain_id)
                starts.append(int(c.res_ids[0]))
        if not coords:
            raise StructureFileError(f"{folder}: no chain passed the filters ({len(rejected)} rejected, e.g. "
                                     f"{next(iter(rejected.items()), ('', ''))}); relax min_length/max_length/"
                                     "allow_chain_breaks/standard_only")
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


def _is_structure_file(p: Path) -> bool:
    s = [x.lower() for x in p.suffixes]
    if s and s[-1] == ".gz":
        s = s[:-1]
    return bool(s) and s[-1] in FORMATS


def _reject_reason(c, min_length: int, max_length: int | None, allow_breaks: bool, standard_only: bool,
                   max_c_n: float) -> str | None:
    L = len(c)
    if L < min_length or (max_length is not None and L > max_length):
        return f"length {L} outside [{min_length}, {max_length}]"
    if standard_only and not c.standard.all():
        bad = sorted({n for n, ok in zip(c.res_names, c.standard) if not ok})
        return f"non-standard residues {', '.join(bad[:5])}"
    if not c.backbone_complete.all():
        i = int(np.flatnonzero(~c.backbone_complete)[0])
        return f"residue {c.res_ids[i]}{c.ins_codes[i]} lacks N, CA or C"
    if not allow_breaks and c.chain_breaks(max_c_n).any():
        i = int(np.flatnonzero(c.chain_breaks(max_c_n))[0])
        return f"chain break after residue {c.res_ids[i]}{c.ins_codes[i]} (C-N > {max_c_n} Angstrom)"
    return None


# ---------------------------------------------------------------------------------------------
# Near-identity grouping and grouped split
# ---------------------------------------------------------------------------------------------


def kmer_matrix(sequences: Sequence[str], k: int = 5):
    """Binary CSR matrix [n, 21^k]: which k-mers (over 20 aa + unknown) each sequence contains."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    powers = 21 ** np.arange(k - 1, -1, -1)
    for i, s in enumerate(sequences):
        a = sequence_to_aatype(s)
        if len(a) < k:
            continue
        win = np.lib.stride_tricks.sliding_window_view(a, k)  # [L-k+1, k]
        ids = np.unique(win @ powers)
        rows.append(np.full(len(ids), i))
        cols.append(ids)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    return csr_matrix((np.ones(len(r), np.int32), (r, c)), shape=(len(sequences), 21**k))


def similarity_groups(sequences: Sequence[str], k: int = 5, threshold: float = 0.3,
                      entries: Sequence[str] | None = None, block: int = 2048) -> np.ndarray:
    """Group label per sequence: connected components of "same entry or k-mer containment >=
    threshold or identical sequence" (see the module docstring). Returns [n] int64."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sequences)
    x = kmer_matrix(sequences, k)
    counts = np.asarray(x.sum(1)).ravel()
    src, dst = [], []
    xt = x.T.tocsr()
    for lo in range(0, n, block):  # shared-k-mer counts in row blocks (bounded memory)
        s = (x[lo: lo + block] @ xt).tocoo()
        denom = np.minimum(counts[lo + s.row], counts[s.col])
        ok = (denom > 0) & (s.data >= threshold * np.maximum(denom, 1))
        src.append(lo + s.row[ok])
        dst.append(s.col[ok])
    keys: dict[str, int] = {}
    for i, s in enumerate(sequences):  # identical sequences (covers ones shorter than k)
        j = keys.setdefault(s, i)
        src.append(np.array([i]))
        dst.append(np.array([j]))
    if entries is not None:
        first: dict[str, int] = {}
        for i, e in enumerate(entries):
            src.append(np.array([i]))
            dst.append(np.array([first.setdefault(e, i)]))
    r, c = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def grouped_split(labels: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): whole groups go to validation, in random order, until it holds about
    ``val_fraction`` of the items; no group is on both sides."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    groups, sizes = np.unique(labels, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(groups))
    target = val_fraction * len(labels)
    val_groups, taken = [], 0
    for g in order:
        if taken >= target:
            break
        if taken + sizes[g] > target * 1.5 + 1 and taken > 0:
            continue  # skip a group that would overshoot a lot; a smaller one may fit
        val_groups.append(groups[g])
        taken += sizes[g]
    is_val = np.isin(labels, val_groups)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


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
