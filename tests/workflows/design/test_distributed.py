"""Campaigns on a dask cluster (issue 26, item 2): the small crystal campaign of design_specs.py, with two
generate shards (batch_size 2), through ``genmatch design --dask-scheduler`` on a ``LocalCluster`` of 2 processes,
gives every exported file (and the generated, relaxed and scored files) byte for byte as the serial run, and so
does the small protein campaign of test_campaign.py (two generate shards) on the same cluster; a scheduler that
does not answer exits 2 before anything is written."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from workflows.cli import main
from workflows.design import run

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import CAMPAIGN  # noqa: E402
from test_campaign import PROTEIN_SPEC  # noqa: E402

# 3 chains of 24 residues in 2 generate shards (a residue budget of 48)
PROTEINS = PROTEIN_SPEC.replace("steps = 3\n", "steps = 3\nresidue_budget = 48\n", 1)

# two generate shards of 2 crystals; the cache from $GENMATCH_CACHE (a cache_dir would be part of score's key)
SHARDED = CAMPAIGN.replace("seed = 3\n", "seed = 3\nbatch_size = 2\n").replace('cache_dir = "CACHE"\n', "")


def _files(folder: Path, also: set[str] = frozenset()) -> dict[str, bytes]:
    """Every file of ``folder`` by relative path, without run bookkeeping (locks, the run records' clocks, the
    summaries that name the campaign folder) and the files named in ``also`` (protein batch records: their wall
    times)."""
    skip = {".genmatch.lock", "run.json", "summary.json", "summary.txt", "relax_summary.json", "manifest.json", *also}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip and "shards" not in p.parts}


def _stage(campaign: Path, kind: str) -> Path:
    return next(campaign.glob(f"*-{kind}-*"))


@pytest.mark.slow  # a LocalCluster's start-up and two campaigns: ~60-90 s on 2 shared cores
def test_a_campaign_on_a_two_process_cluster_equals_the_serial_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import LocalCluster

    spec = tmp_path / "campaign.toml"
    spec.write_text(SHARDED)
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache_serial"))
    t0 = time.perf_counter()
    assert main(["design", str(spec), "--out", str(tmp_path / "serial"), "--quiet", "--threads", "1"]) == 0
    serial = time.perf_counter() - t0
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache_dask"))  # nothing shared with the serial run
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        t0 = time.perf_counter()
        assert main(["design", str(spec), "--out", str(tmp_path / "dask"), "--threads", "1",
                     "--dask-scheduler", cluster.scheduler_address]) == 0
        distributed = time.perf_counter() - t0
        protein_spec = tmp_path / "proteins.toml"  # proteins too: 3 chains in 2 generate shards, on the same cluster
        protein_spec.write_text(PROTEINS.replace('cache_dir = "CACHE"\n', ""))
        with pytest.warns(UserWarning, match="outside the 60-128 residues"):
            run(protein_spec, tmp_path / "proteins_dask", threads=1, progress=False,
                dask_scheduler=cluster.scheduler_address)
    monkeypatch.setenv("GENMATCH_CACHE", str(tmp_path / "cache_proteins"))
    with pytest.warns(UserWarning, match="outside the 60-128 residues"):
        run(protein_spec, tmp_path / "proteins_serial", threads=1, progress=False)
    err = capsys.readouterr().err
    assert "[1/7] generate: running" in err and "on the dask cluster at tcp://" in err
    assert "[1/7] generate: done, 4 structures, 2 shards on the cluster" in err
    assert "relax: done" in err and "shards on the cluster" in err.split("relax: done")[1].splitlines()[0]
    a, b = tmp_path / "serial", tmp_path / "dask"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())  # the same stage keys
    assert list((_stage(b, "relax") / "shards").iterdir())  # relax did run in shards
    for kind in ("export", "generate", "relax", "score", "rank"):
        x, y = _files(_stage(a, kind)), _files(_stage(b, kind))
        assert x.keys() == y.keys() and x, kind
        assert [k for k in x if x[k] != y[k]] == [], kind
    assert "top.csv" in _files(_stage(a, "export"))
    a, b = tmp_path / "proteins_serial", tmp_path / "proteins_dask"
    assert len(list(_stage(b, "generate").glob("batches/*.json"))) == 2
    for kind in ("export", "generate", "score"):
        records = {"00000.json", "00001.json"}
        x, y = _files(_stage(a, kind), records), _files(_stage(b, kind), records)
        assert x.keys() == y.keys() and x, kind
        assert [k for k in x if x[k] != y[k]] == [], kind
    print(f"serial {serial:.1f} s, 2-process cluster {distributed:.1f} s (its start-up outside)")


def test_a_scheduler_that_does_not_answer_exits_2_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "campaign.toml"
    spec.write_text(SHARDED)
    out = tmp_path / "campaign"
    assert main(["design", str(spec), "--out", str(out), "--dask-scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "no dask scheduler answers there" in capsys.readouterr().err and not out.exists()
    assert main(["design", str(spec), "--out", str(out), "--dask-scheduler", "nowhere"]) == 2
    assert "is not a scheduler address" in capsys.readouterr().err and not out.exists()
