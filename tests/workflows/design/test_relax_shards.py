"""Protein relax in shards (workflows/design/relax_shards.py; issue 26, item 2): the same files as the serial verb.

Five usable chains (four generated 12-residue chains and one with unknown residues, a ``failed`` row without a
model) and one unreadable file (a bad-input row the verb writes last) are relaxed serially by the verb and in
shards of 2, 2 and 1 in this process (the cluster runs the same functions): every file is byte for byte the
serial one (the checkpoint's lines in another order). A shard left half-done (its worker killed after its first
chain) is resumed: only its missing chain is relaxed, the finished shards are not touched. A protein campaign
with a relax stage on a 2-process ``LocalCluster`` equals the serial campaign (slow). OpenMM's minimisation on the
CPU platform is deterministic per chain whatever ran before it in the process, so a shard changes no byte, as long
as no other thread draws from Python's global ``random`` during the build (a dask worker's event loop does).
"""

from __future__ import annotations

import random
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from pipeline.proteins.relax import ProteinRelaxConfig
from pipeline.proteins.relax.run import CHECKPOINT
from workflows import proteins
from workflows.design.relax_shards import relax_proteins_sharded

pytest.importorskip("openmm")
pytest.importorskip("pdbfixer")

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs and helpers, imported by their plain name
from test_distributed import PROTEINS, _files, _stage  # noqa: E402

CONFIG = ProteinRelaxConfig()


@pytest.fixture(scope="module")
def structures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 4 generated chains of 12 residues, one chain whose residues are all UNK (usable, but relax
    fails it: no sequence to build side chains from) and one file that is no structure."""
    from pipeline.proteins.generate import ProteinGenerateConfig

    root = tmp_path_factory.mktemp("relax_shards")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 12 residues: outside the model's 60-128 residues
        proteins.generate(ProteinGenerateConfig(lengths=(12,), per_length=4, steps=3, seed=2), out_dir=root / "gen",
                          threads=1, progress=False)
    pdb = root / "gen" / "pdb"
    text = (pdb / "length_12_0000.pdb").read_text().splitlines(True)
    (pdb / "unk.pdb").write_text("".join(line[:17] + "UNK" + line[20:] if line.startswith("ATOM") else line
                                         for line in text))
    (pdb / "broken.pdb").write_text("not a structure\n")
    return pdb


@pytest.fixture(scope="module")
def serial(structures: Path) -> Path:
    out = structures.parent.parent / "serial"
    proteins.relax(str(structures), CONFIG, out_dir=out, threads=1, progress=False)
    return out


def _same_as_serial(serial: Path, folder: Path) -> None:
    """Every file of the run folders byte for byte (run records and locks aside; the summary too: it names the
    same input folder), the checkpoint as a set of lines (the bad-input row is the verb's first line serially, its
    last after shards)."""
    a, b = _files(serial, {CHECKPOINT}), _files(folder, {CHECKPOINT})
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    assert (serial / "relax_summary.json").read_bytes() == (folder / "relax_summary.json").read_bytes()
    lines = sorted((serial / CHECKPOINT).read_text().splitlines())
    assert len(lines) == 6 and lines == sorted((folder / CHECKPOINT).read_text().splitlines())


def test_protein_relax_in_shards_writes_the_serial_files_and_resumes_a_half_done_shard(
        structures: Path, serial: Path, tmp_path: Path) -> None:
    """About 20 s on a shared core (11 minimisations of 12 residues)."""
    a = _files(serial)
    assert {f"relaxed/length_12_000{i}.pdb" for i in range(4)} <= a.keys() and "relaxed/unk.pdb" not in a
    assert b",failed," in a["relax_results.csv"] and b"bad input" in a["relax_results.csv"]

    sharded = tmp_path / "sharded"
    assert relax_proteins_sharded(structures, CONFIG, sharded, None, 1, False) == 3  # 5 usable chains: 2, 2, 1
    shards = sorted((sharded / "shards").iterdir())
    assert sorted(len((s / CHECKPOINT).read_text().splitlines()) for s in shards) == [1, 2, 2]
    assert not (sharded / "relax_results.csv").exists()  # the verb writes the table
    proteins.relax(str(structures), CONFIG, out_dir=sharded, threads=1, progress=False)
    _same_as_serial(serial, sharded)

    # the campaign killed while the worker of a 2-chain shard had written its first chain only
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copyfile(sharded / "run.json", resumed / "run.json")
    shutil.copytree(sharded / "shards", resumed / "shards")
    half = next(s for s in sorted((resumed / "shards").iterdir()) if len((s / CHECKPOINT).read_text().splitlines())
                == 2 and len(list((s / "relaxed").glob("*.pdb"))) == 2)
    first, second = (half / CHECKPOINT).read_text().splitlines()
    (half / CHECKPOINT).write_text(first + "\n")
    lost = next(p for p in (half / "relaxed").glob("*.pdb") if f'"id": "{p.stem}"' in second)
    lost.unlink()
    before = {p: p.stat().st_mtime_ns for p in (resumed / "shards").rglob("*.pdb")}
    assert relax_proteins_sharded(structures, CONFIG, resumed, None, 1, False) == 3  # the same shards
    assert {p: p.stat().st_mtime_ns for p in before} == before  # no finished chain relaxed again
    assert (half / CHECKPOINT).read_text() == f"{first}\n{second}\n" and lost.is_file()
    proteins.relax(str(structures), CONFIG, out_dir=resumed, threads=1, progress=False)
    _same_as_serial(serial, resumed)
    assert relax_proteins_sharded(structures, CONFIG, resumed, None, 1, False) == 0  # a finished run: no shard


def test_a_chain_relaxes_to_the_same_bytes_while_another_thread_draws_from_pythons_random(
        structures: Path, serial: Path) -> None:
    """A dask worker runs its task in a thread beside its event loop, which draws from Python's global ``random``;
    OpenMM's Modeller places the hydrogens at random starting positions, so the build must draw from a generator
    of its own (:func:`pipeline.proteins.relax.amber.build_model`) for a shard to give the serial bytes."""
    from pipeline.proteins.relax import relax_chain
    from pipeline.proteins.score.inputs import as_protein_input

    chain = as_protein_input(str(structures / "length_12_0001.pdb")).chains[0]
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()

    other = threading.Thread(target=draw, daemon=True)
    other.start()
    try:
        pdb = relax_chain(chain, CONFIG).pdb
    finally:
        stop.set()
        other.join()
    assert pdb == (serial / "relaxed" / "length_12_0001.pdb").read_text()


@pytest.mark.slow  # a LocalCluster's start-up and two protein campaigns with 3 minimisations each: ~60 s
def test_a_protein_campaign_relaxed_on_a_two_process_cluster_equals_the_serial_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from workflows.design import run

    spec = tmp_path / "proteins.toml"  # 3 chains of 24 residues in 2 generate shards, then relax: 3 relax shards
    spec.write_text(PROTEINS.replace('cache_dir = "CACHE"\n', "").replace(
        '[[stage]]\nkind = "score"', '[[stage]]\nkind = "relax"\n\n[[stage]]\nkind = "score"', 1))
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache_serial"))
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        run(spec, tmp_path / "serial", threads=1, progress=False)
    serial = time.perf_counter() - t0
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache_dask"))  # nothing shared with the serial run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        t0 = time.perf_counter()
        with pytest.warns(UserWarning, match="outside the 60-128 residues"):
            run(spec, tmp_path / "dask", threads=1, progress=False, dask_scheduler=cluster.scheduler_address,
                workers=2)
        distributed = time.perf_counter() - t0
    a, b = tmp_path / "serial", tmp_path / "dask"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())  # the same stage keys
    assert len(list((_stage(b, "relax") / "shards").iterdir())) == 3 and not (_stage(a, "relax") / "shards").exists()
    records = {"00000.json", "00001.json", CHECKPOINT}  # batch records hold wall times; checkpoint: shard order
    for kind in ("generate", "relax", "score", "export"):
        x, y = _files(_stage(a, kind), records), _files(_stage(b, kind), records)
        assert x.keys() == y.keys() and x, kind
        assert [k for k in x if x[k] != y[k]] == [], kind
    assert len(list(_stage(b, "relax").glob("relaxed/*.pdb"))) == 3
    print(f"serial {serial:.1f} s, 2-process cluster {distributed:.1f} s (its start-up outside)")
