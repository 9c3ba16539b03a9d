"""Protein data sets: npz and folders of PDB/mmCIF files, filters, bucketed batches, grouped split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from structures.proteins.dataset import (
    ChainFilter,
    LengthBucketBatchSampler,
    ProteinDataset,
    grouped_split,
    padded_fraction,
    sequence_to_aatype,
    similarity_groups,
)
from structures.proteins.io import BackboneChain, write_structure
from structures.proteins.residue_constants import RESTYPES


@pytest.fixture(scope="module")
def npz_set():
    return ProteinDataset.from_npz(min_length=60, max_length=200)


def test_npz_dataset_items_and_collate(npz_set):
    assert 0 < len(npz_set) < 3000 and npz_set.lengths.min() >= 60 and npz_set.lengths.max() <= 200
    ex = npz_set[0]
    L = int(npz_set.lengths[0])
    assert ex.atoms.shape == (L, 4, 3) and ex.aatype.shape == (L,)
    assert torch.allclose(ex.atoms[:, 1].mean(0), torch.zeros(3), atol=1e-4)  # centred on CA
    assert (ex.aatype < 20).all()
    sampler = LengthBucketBatchSampler(npz_set.lengths, max_residues=2000, seed=0)
    loader = DataLoader(npz_set, batch_sampler=sampler, collate_fn=ProteinDataset.collate)
    batch = next(iter(loader))
    n = batch.atoms.shape[1]
    assert batch.atoms.shape[0] * n <= 2000 and batch.res_mask.shape == batch.aatype.shape
    assert (batch.res_mask.sum(1) == batch.lengths).all() and n == int(batch.lengths.max())
    assert batch.frames().rots.shape == (len(batch.names), n, 3, 3)


def test_length_bucket_sampler_covers_everything_once_and_pads_little(npz_set):
    lengths = npz_set.lengths
    s = LengthBucketBatchSampler(lengths, max_residues=4000, max_batch_size=64, seed=1)
    batches = list(s)
    flat = np.concatenate(batches)
    assert len(flat) == len(lengths) and len(np.unique(flat)) == len(lengths)
    assert all(len(b) * lengths[b].max() <= 4000 and len(b) <= 64 for b in batches)
    assert padded_fraction(batches, lengths) < 0.05
    random_batches = np.array_split(np.random.default_rng(0).permutation(len(lengths)), len(batches))
    assert padded_fraction(random_batches, lengths) > 0.2  # bucketing is what keeps padding low
    s.set_epoch(1)
    assert [list(b) for b in s] != [list(b) for b in batches]  # reshuffled per epoch, deterministic per seed
    s.set_epoch(0)
    assert [list(b) for b in s] == [list(b) for b in batches]
    halves = [list(LengthBucketBatchSampler(lengths, 4000, 64, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sum(map(len, halves)) == len(batches)
    with pytest.raises(ValueError, match="max_residues"):
        LengthBucketBatchSampler([10, 500], max_residues=100)


def _mutate(seq: str, frac: float, rng: np.random.Generator) -> str:
    s = np.array(list(seq))
    idx = rng.choice(len(s), int(frac * len(s)), replace=False)
    s[idx] = rng.choice(list(RESTYPES), len(idx))
    return "".join(s)


def test_similarity_groups_link_near_identical_only():
    rng = np.random.default_rng(0)
    base = ["".join(rng.choice(list(RESTYPES), 150)) for _ in range(20)]
    seqs = base + [_mutate(s, 0.05, rng) for s in base[:10]] + [_mutate(s, 0.5, rng) for s in base[10:]]
    labels = similarity_groups(seqs)
    for i in range(10):
        assert labels[i] == labels[20 + i]  # 95 % identical: same group
    for i in range(10, 20):
        assert labels[i] != labels[20 + i]  # 50 % identical: separate
    assert len(np.unique(labels[:20])) == 20  # unrelated random chains are not linked
    # same entry links chains regardless of sequence; identical short peptides link too
    lab = similarity_groups(["ACDEFGHIK", "WWWWWWWWW", "ACD", "ACD"], entries=["1abc", "1abc", "x", "y"])
    assert lab[0] == lab[1] and lab[2] == lab[3] and lab[0] != lab[2]
    tr, va = grouped_split(labels, 0.3, seed=0)
    assert not set(labels[tr]) & set(labels[va]) and 0.15 <= len(va) / len(labels) <= 0.45
    assert sorted(np.r_[tr, va].tolist()) == list(range(len(labels)))


def test_npz_split_keeps_entries_together(npz_set):
    train, val = npz_set.split(val_fraction=0.1, seed=0)
    assert len(train) + len(val) == len(npz_set)
    assert 0.08 <= len(val) / len(npz_set) <= 0.12
    tr_ids = {n.split("_")[0] for n in train.names}
    assert not tr_ids & {n.split("_")[0] for n in val.names}


def test_directory_dataset_filters_and_split(tmp_path, monkeypatch):
    """A folder of PDB/mmCIF files: filters (length, breaks, non-standard, incomplete backbone),
    missing O rebuilt, cis peptides kept, near-duplicates grouped on one side of the split."""
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache"))
    tmp_path = tmp_path / "pdbs"
    tmp_path.mkdir()
    full = ProteinDataset.from_npz()
    bb = full.backbones
    rng = np.random.default_rng(0)

    def chain(i: int, **kw) -> BackboneChain:
        c = bb[i]
        return BackboneChain.from_coords(c.coords + 5.0, c.sequence, **kw)

    # find a chain with a cis peptide (CA-CA < 3.2 A inside the chain)
    cis = next(i for i in range(len(bb)) if (np.linalg.norm(np.diff(bb[i].ca, axis=0), axis=1) < 3.2).any()
               and 60 <= len(bb[i]) <= 200)
    files = {
        "a1.pdb": [chain(0)], "a2.cif": [chain(1), replace(chain(2), chain_id="B")], "cis.pdb": [chain(cis)],
        "short.pdb": [BackboneChain.from_coords(bb[3].coords[:20], bb[3].sequence[:20])],
    }
    gap = bb[4]
    files["gap.pdb"] = [BackboneChain.from_coords(np.concatenate([gap.coords[:50], gap.coords[60:]]),
                                                  gap.sequence[:50] + gap.sequence[60:])]
    c5 = chain(5)
    files["mse.pdb"] = [replace(c5, res_names=("MSE",) + c5.res_names[1:])]
    c6 = chain(6)
    mask = c6.atom_mask.copy()
    mask[10, 1] = False  # no CA in residue 10
    files["noca.pdb"] = [replace(c6, atom_mask=mask)]
    c7 = chain(7)
    mask = c7.atom_mask.copy()
    mask[[3, 4, len(c7) - 1], 3] = False  # missing carbonyl O (incl. the C-terminal one)
    files["noo.cif"] = [replace(c7, atom_mask=mask)]
    # a near-identical copy (3 % mutated) of chain 0 in another file
    files["a1_copy.pdb"] = [BackboneChain.from_coords(bb[0].coords, _mutate(bb[0].sequence, 0.03, rng))]
    (tmp_path / "sub").mkdir()
    for name, chains in files.items():
        write_structure(tmp_path / ("sub" if name.startswith("a2") else "") / name, chains)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "broken.pdb").write_text("garbage\n")

    ds = ProteinDataset.from_directory(tmp_path, ChainFilter(min_length=40, max_length=400), progress=False)
    names = set(ds.names)
    assert names == {"a1_A", "a2_A", "a2_B", "cis_A", "noo_A", "a1_copy_A"}, ds.rejected
    assert "length 20" in ds.rejected["short_A"] and "chain break" in ds.rejected["gap_A"]
    assert "MSE" in ds.rejected["mse_A"] and "misses CA atoms" in ds.rejected["noca_A"]
    assert "broken.pdb" in ds.rejected
    k = ds.names.index("noo_A")
    ex = ds[k]
    ref = torch.from_numpy(bb[7].coords) - torch.from_numpy(bb[7].coords[:, 1]).mean(0)
    assert torch.allclose(ex.atoms[:, 1].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.linalg.norm(ex.atoms[3, 3] - ref[3, 3]) < 0.5  # rebuilt O near the real one
    assert torch.allclose(ex.atoms[5], ref[5], atol=1e-3)
    assert (ex.aatype == torch.from_numpy(sequence_to_aatype(bb[7].sequence))).all()
    # the near-identical copy and the original never straddle the split, whatever the seed
    for seed in range(6):
        train, val = ds.split(val_fraction=0.3, seed=seed)
        sides = {n: ("t" if n in train.names else "v") for n in ds.names}
        assert sides["a1_A"] == sides["a1_copy_A"] and sides["a2_A"] == sides["a2_B"]
    allowed = ProteinDataset.from_directory(tmp_path, ChainFilter(min_length=40, allow_chain_breaks=True,
                                                                standard_only=False), progress=False)
    assert {"gap_A", "mse_A"} <= set(allowed.names)
    with pytest.raises(Exception, match="no chain passed"):
        ProteinDataset.from_directory(tmp_path, ChainFilter(min_length=1000), progress=False)
    # the parsed folder is cached (npz, no pickle); editing a file invalidates the entry
    cached = list((tmp_path.parent / "cache" / "protein_folders").glob("*.npz"))
    assert len(cached) == 2  # the two successful settings
    again = ProteinDataset.from_directory(tmp_path, ChainFilter(min_length=40, max_length=400), progress=False)
    assert again.names == ds.names and again.rejected == ds.rejected
    assert torch.equal(again[k].atoms, ds[k].atoms)
    (tmp_path / "short.pdb").unlink()
    third = ProteinDataset.from_directory(tmp_path, ChainFilter(min_length=40, max_length=400), progress=False)
    assert "short_A" not in third.rejected and third.names == ds.names
    assert len(list((tmp_path.parent / "cache" / "protein_folders").glob("*.npz"))) == 3


def test_chain_filter_refuses_bad_settings_naming_the_field():
    from structures.errors import InputError

    assert ChainFilter() == ChainFilter(40, 512, False, True, None, 2.0)
    for kwargs, field in [({"min_length": 0}, "min_length"), ({"max_length": "400"}, "max_length"),
                          ({"allow_chain_breaks": 1}, "allow_chain_breaks"), ({"chain": 7}, "chain"),
                          ({"max_c_n": float("nan")}, "max_c_n")]:
        with pytest.raises(InputError, match=f"ChainFilter.{field}"):
            ChainFilter(**kwargs)
