"""The shards of generate (workflows/design/distributed.py) and relax (workflows/design/relax_shards.py), run in
this process (no cluster; the cluster runs the same functions): the same files as the verbs' serial runs; a lost
shard is the only one redone; a relax interrupted serially is finished in shards without redoing its finished
structures."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.crystals.generate import CrystalGenerateConfig
from pipeline.crystals.inputs import as_crystal_input
from pipeline.crystals.relax.run import CHECKPOINT, CrystalRelaxConfig
from workflows import crystals
from workflows.design.distributed import generate_sharded
from workflows.design.relax_shards import relax_crystals_sharded, relax_shards

SKIP = {".genmatch.lock", "run.json", "manifest.json", "relax_summary.json"}  # the lock; clocks and versions


def _files(folder: Path, skip: set[str] = SKIP) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip and "shards" not in p.parts}


def test_generate_and_relax_shards_write_the_serial_files(tmp_path: Path) -> None:
    """4 perov_5 crystals, 3 sampler steps, in 2 shards of 2; CHGNet, 3 FIRE steps (about 15 s)."""
    config = CrystalGenerateConfig(n=4, steps=3, seed=5, batch_size=2)
    serial, sharded = tmp_path / "gen_serial", tmp_path / "gen_sharded"
    crystals.generate(config, out_dir=serial, threads=1, progress=False)
    assert generate_sharded("crystals", config, sharded, None, False) == 2
    (sharded / "batches" / "00001.json").unlink()  # a shard lost with its worker: only it is redone
    record = (sharded / "batches" / "00000.json").stat().st_mtime_ns
    assert generate_sharded("crystals", config, sharded, None, False) == 1
    assert (sharded / "batches" / "00000.json").stat().st_mtime_ns == record
    crystals.generate(config, out_dir=sharded, threads=1, progress=False)  # every shard done: the manifest
    a, b = _files(serial), _files(sharded)
    assert "manifest.csv" in a and len([k for k in a if k.startswith("cifs/")]) >= 1
    assert a == b

    relax = CrystalRelaxConfig(max_steps=3, batch_size=2)
    cifs = serial / "cifs"
    r_serial, r_sharded, r_resumed = tmp_path / "relax_serial", tmp_path / "relax_sharded", tmp_path / "relax_resumed"
    crystals.relax(str(cifs), relax, out_dir=r_serial, threads=1, progress=False)
    n_usable = sum(p is None for p in as_crystal_input(str(cifs), "cifs").usable(max_z=94))
    assert relax_crystals_sharded(cifs, relax, r_sharded, None, 2, False) == -(-n_usable // relax_shards(
        n_usable, 2, relax.batch_size))
    crystals.relax(str(cifs), relax, out_dir=r_sharded, threads=1, progress=False)
    ckpt = {CHECKPOINT}  # its lines are in shard order, not input order
    assert _files(r_serial, SKIP | ckpt) == _files(r_sharded, SKIP | ckpt)
    assert "relax_results.csv" in _files(r_serial)

    # a serial relax interrupted after its first structure (its run record, checkpoint line and CIF), then sharded
    r_resumed.mkdir()
    shutil.copyfile(r_serial / "run.json", r_resumed / "run.json")
    first = (r_serial / CHECKPOINT).read_text().splitlines()[0]
    (r_resumed / CHECKPOINT).write_text(first + "\n")
    for cif in (r_serial / "relaxed").glob("*.cif"):
        if f'"id": "{cif.stem}"' in first:
            (r_resumed / "relaxed").mkdir()
            shutil.copyfile(cif, r_resumed / "relaxed" / cif.name)
    relax_crystals_sharded(cifs, relax, r_resumed, None, 2, False)
    shards = [p for p in (r_resumed / "shards").iterdir()]
    assert sum(len((p / CHECKPOINT).read_text().splitlines()) for p in shards) == n_usable - 1  # not the first
    crystals.relax(str(cifs), relax, out_dir=r_resumed, threads=1, progress=False)
    assert _files(r_serial, SKIP | ckpt) == _files(r_resumed, SKIP | ckpt)


def test_relax_shards_are_about_four_per_worker_and_at_least_half_a_batch() -> None:
    assert relax_shards(1000, 2, 32) == 125
    assert relax_shards(10, 2, 32) == 16
    assert relax_shards(3, 8, 1) == 1


def test_protein_generate_shards_write_the_serial_files(tmp_path: Path) -> None:
    """The shipped protein model, 3 chains of 24 residues, 3 steps, a residue budget of 48: 2 shards (about 3 s)."""
    import pytest

    from pipeline.proteins.generate import ProteinGenerateConfig
    from workflows import proteins

    config = ProteinGenerateConfig(lengths=(24,), per_length=3, steps=3, seed=2, residue_budget=48)
    serial, sharded = tmp_path / "serial", tmp_path / "sharded"
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        proteins.generate(config, out_dir=serial, threads=1, progress=False)
    assert generate_sharded("proteins", config, sharded, None, False) == 2
    (sharded / "batches" / "00001.json").unlink()  # a shard lost with its worker: only it is redone
    assert generate_sharded("proteins", config, sharded, None, False) == 1
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        proteins.generate(config, out_dir=sharded, threads=1, progress=False)  # every shard done: the manifests
    skip = SKIP | {f"{k:05d}.json" for k in range(2)}  # batch records hold their wall times
    a, b = _files(serial, skip), _files(sharded, skip)
    assert {"manifest.csv", "samples.fasta"} <= a.keys() and len([k for k in a if k.startswith("pdb/")]) == 3
    assert a == b
