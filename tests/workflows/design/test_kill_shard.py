"""A campaign killed during its sharded generate loses only the shards in flight (issue 26, item 2): ``genmatch
design --workers 2`` (a local cluster of 2 processes) on 16 generate shards of one crystal is killed (its whole
process group, cluster included) as soon as the first shard is written; the rerun, on a new cluster, runs only the
missing shards, leaves the finished ones untouched, and exports the same files as an uninterrupted serial run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import CAMPAIGN  # noqa: E402

pytestmark = pytest.mark.slow  # two local clusters and a serial campaign: ~90 s on 2 shared cores

EXE = Path(sys.executable).with_name("genmatch")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "workflows.cli"]
N = 16
SPEC = (CAMPAIGN.replace("n = 4\n", f"n = {N}\n").replace("seed = 3\n", "seed = 3\nbatch_size = 1\n")
        .replace('cache_dir = "CACHE"\n', ""))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _records(campaign: Path) -> dict[str, tuple[int, bytes]]:
    """The finished generate shards: batch record name -> (mtime in ns, bytes)."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in campaign.glob("00-generate-*/batches/*.json")}


def test_a_campaign_killed_mid_generate_reruns_only_the_lost_shards(tmp_path: Path) -> None:
    spec = tmp_path / "campaign.toml"
    spec.write_text(SPEC)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    argv = CMD + ["design", str(spec), "--threads", "1", "--out"]
    r = subprocess.run(argv + [str(tmp_path / "whole"), "--quiet"], capture_output=True, text=True, timeout=600,
                       env={**env, "GENMATCH_CACHE": str(tmp_path / "cache_whole")})
    assert r.returncode == 0, r.stderr[-2000:]

    env["GENMATCH_CACHE"] = str(tmp_path / "cache_killed")
    killed = tmp_path / "killed"
    p = subprocess.Popen(argv + [str(killed), "--quiet", "--workers", "2"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _records(killed) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)  # the campaign and its cluster's processes
    p.wait()
    before = _records(killed)
    assert 1 <= len(before) < N, f"{len(before)} of {N} shards finished when the kill came"
    assert not list(killed.glob("*/stage.json"))  # generate had not finished

    r = subprocess.run(argv + [str(killed), "--workers", "2"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    line = re.search(r"\[1/7\] generate: done, (\d+) structures, (\d+) shards on the cluster", r.stderr)
    assert line and int(line.group(2)) == N - len(before), r.stderr[-2000:]  # only the missing shards ran
    after = _records(killed)
    assert len(after) == N and all(after[k] == v for k, v in before.items())  # the finished ones untouched
    assert not list(killed.rglob(".*.tmp"))
    names = lambda d: sorted(q.name for q in d.iterdir() if q.is_dir())  # noqa: E731
    assert names(killed) == names(tmp_path / "whole")
    export = next(q for q in names(killed) if "-export-" in q)
    a, b = _files(tmp_path / "whole" / export), _files(killed / export)
    assert a.keys() == b.keys() and "top.csv" in a
    assert [k for k in a if a[k] != b[k]] == []
    print(f"killed with {len(before)} of {N} shards finished; the rerun ran {line.group(2)}")
