"""kill -9 a crystal campaign at seeded random moments, then rerun it: the exported files equal those of an
uninterrupted run (issue 26, "Done when"). The real console script runs in a subprocess (its own session); it is
killed a few times after a random delay, each rerun resuming the remains of the last, then run to completion.
Checks: exit 0, no temporary files left, every stage folder named as in the uninterrupted run, and top.csv and
every exported structure byte-identical."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the shared specs, imported by their plain name
from design_specs import CAMPAIGN  # noqa: E402

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("genmatch")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "workflows.cli"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_killed_campaign_resumes_to_the_same_export(tmp_path: Path) -> None:
    spec = tmp_path / "campaign.toml"
    spec.write_text(CAMPAIGN.replace('cache_dir = "CACHE"\n', ""))  # the cache from $GENMATCH_CACHE: one per run
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    argv = CMD + ["design", str(spec), "--quiet", "--threads", "1", "--out"]
    t0 = time.monotonic()
    r = subprocess.run(argv + [str(tmp_path / "whole")], capture_output=True, text=True, timeout=600,
                       env={**env, "GENMATCH_CACHE": str(tmp_path / "cache_whole")})
    assert r.returncode == 0, r.stderr[-2000:]
    whole = time.monotonic() - t0
    rng = random.Random(26)
    env["GENMATCH_CACHE"] = str(tmp_path / "cache_killed")
    killed = tmp_path / "killed"
    finished: list[int] = []  # stages finished when each kill came
    for _ in range(3):
        p = subprocess.Popen(argv + [str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                             start_new_session=True)
        time.sleep(rng.uniform(2.0, 0.8 * whole))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        finished.append(len(list(killed.glob("*/stage.json"))))
    r = subprocess.run(argv + [str(killed)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"uninterrupted {whole:.1f} s; stages finished at the kills: {finished}")
    assert min(finished) < 7  # at least one kill came before the campaign ended
    assert not [p for p in killed.rglob(".*.tmp")]
    names = lambda d: sorted(p.name for p in d.iterdir() if p.is_dir())  # noqa: E731
    assert names(killed) == names(tmp_path / "whole")
    export = next(p for p in names(killed) if "-export-" in p)
    a, b = _files(tmp_path / "whole" / export), _files(killed / export)
    assert a.keys() == b.keys() and "top.csv" in a
    assert [k for k in a if a[k] != b[k]] == []
