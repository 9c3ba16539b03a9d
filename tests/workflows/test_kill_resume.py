"""kill -9 at random moments, then rerun: the result equals an uninterrupted run (issue 11).

For generate, relax, score and the demo: the real console script runs in a subprocess (its own process
group). Once the run holds its folder (the lock file holds the child's pid), it is killed with SIGKILL
after a seeded random delay; this repeats a few times, each time resuming the previous remains, and
then the same command runs to completion. Checks: exit 0 (the dead process's lock does not block),
no temporary files (``.*.tmp``) left anywhere under the folder, no duplicated item, and the outputs
equal those of an uninterrupted run of the same command into another folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("genmatch")
CMD = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "workflows.cli"]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "GENMATCH_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}


def _run(argv: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(CMD + argv, capture_output=True, text=True, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def _holds_lock(out: Path, pid: int) -> bool:
    try:
        return (out / ".genmatch.lock").read_text().strip() == str(pid)
    except OSError:
        return False


def _start(argv: list[str], out: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``genmatch argv --out out``; return once it holds the folder (or has ended)."""
    p = subprocess.Popen(CMD + argv + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    while p.poll() is None and not _holds_lock(out, p.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is not None or _holds_lock(out, p.pid), "the run never started"
    return p


def reference(argv: list[str], out: Path, env: dict[str, str]) -> float:
    """An uninterrupted run into ``out``; returns its working time (from holding the folder to exit), s."""
    p = _start(argv, out, env)
    t0 = time.monotonic()
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    return time.monotonic() - t0


def interrupt(argv: list[str], out: Path, env: dict[str, str], seed: int, kills: int, work_s: float,
              progress: Callable[[Path], Any]) -> list[dict[str, Any]]:
    """Start ``genmatch argv --out out`` ``kills`` times; each time, once it holds the folder, SIGKILL its
    process group after a random share (5 % to 90 %, seeded) of ``work_s``, the working time of an
    uninterrupted run (so the kills land inside the work on a fast or a busy machine alike). Returns what
    happened each time, with ``progress(out)`` (how much work was on disk) right after the kill."""
    rng = random.Random(seed)
    events = []
    for _ in range(kills):
        delay = rng.uniform(0.05, 0.9) * work_s
        p = _start(argv, out, env)
        time.sleep(delay)
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # the command and any worker it started, at once
            p.wait()
            events.append({"killed_after_s": round(delay, 2), "progress": progress(out),
                           "tmp_files": len(list(out.rglob(".*.tmp")))})
        else:
            assert p.wait() == 0, p.stderr.read()[-2000:] if p.stderr else ""
            events.append({"finished_before_kill": True})
        if p.stderr:
            p.stderr.close()
    return events


def _files(out: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != ".genmatch.lock" and not p.name.endswith(skip)}


def _finish(argv: list[str], out: Path, env: dict[str, str]) -> None:
    r = _run(argv + ["--out", str(out)], env)
    assert "another genmatch process" not in r.stderr
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def _checkpointed(out: Path) -> int:
    """Structures in the relax checkpoint."""
    p = out / "relax_checkpoint.jsonl"
    return len(p.read_text().splitlines()) if p.is_file() else 0


@pytest.fixture(scope="module")
def cifs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from structures.data import load_crystals

    d = tmp_path_factory.mktemp("cifs")
    for i, s in enumerate(load_crystals("perov_5", "test", limit=12).structures):
        (d / f"s{i:02d}.cif").write_text(s.to(fmt="cif"))
    return d


def test_generate_resumes_after_kill_9(tmp_path: Path) -> None:
    argv = ["generate", "crystals", "--model", "perov_5", "-n", "60", "--batch-size", "5", "--steps", "40",
            "--quiet", "--threads", "1"]
    env = _env(tmp_path / "cache")
    work = reference(argv, tmp_path / "ref", env)
    events = interrupt(argv, tmp_path / "run", env, seed=11, kills=3, work_s=work,
                       progress=lambda out: len(list((out / "batches").glob("*.json"))))
    assert any(0 < e.get("progress", 0) < 12 for e in events), events  # killed between batches
    # what a kill inside an atomic write leaves: the resume must remove it
    (tmp_path / "run" / "batches" / ".00011.json.k9x.tmp").write_text('{"batch": 11, "rows": [')
    _finish(argv, tmp_path / "run", env)
    assert _files(tmp_path / "run") == _files(tmp_path / "ref")  # manifest, batches, CIFs, run.json: identical
    rows = json.loads((tmp_path / "run" / "manifest.json").read_text())["rows"]
    assert [r["id"] for r in rows] == [f"gen_{i:06d}" for i in range(60)]  # nothing lost, nothing twice
    print(f"generate: work {work:.1f} s, kills {events}")


def test_relax_resumes_after_kill_9(tmp_path: Path, cifs: Path) -> None:
    argv = ["relax", "crystals", str(cifs), "--max-steps", "30", "--batch-size", "4", "--quiet", "--threads", "1"]
    env = _env(tmp_path / "cache")
    work = reference(argv, tmp_path / "ref", env)
    events = interrupt(argv, tmp_path / "run", env, seed=12, kills=3, work_s=work, progress=_checkpointed)
    assert any(0 < e.get("progress", 0) < 12 for e in events), events  # killed with some relaxed, some not
    _finish(argv, tmp_path / "run", env)
    ref, run = (pd.read_csv(tmp_path / d / "relax_results.csv") for d in ("ref", "run"))
    assert list(run["id"]) == list(ref["id"]) == [f"s{i:02d}" for i in range(12)]
    pd.testing.assert_frame_equal(run, ref, check_exact=False, rtol=1e-6)
    lines = (tmp_path / "run" / "relax_checkpoint.jsonl").read_text().splitlines()
    ids = []
    for line in lines:
        try:
            ids.append(json.loads(line)["id"])
        except ValueError:  # a line cut by a kill is skipped on resume
            pass
    assert len(ids) == len(set(ids)), "a structure was relaxed twice"
    assert sorted(p.name for p in (tmp_path / "run" / "relaxed").iterdir()) == \
        sorted(p.name for p in (tmp_path / "ref" / "relaxed").iterdir())
    print(f"relax: work {work:.1f} s, kills {events}")


def test_score_resumes_after_kill_9(tmp_path: Path, cifs: Path) -> None:
    def argv(cache: str) -> list[str]:
        return ["score", "crystals", str(cifs), "--reference", "perov_5:test", "--reference-limit", "30",
                "--n-samples", "5", "--cache-dir", cache, "--quiet", "--threads", "1", "--no-plots"]

    env = _env(tmp_path / "cache")
    work = reference(argv(str(tmp_path / "cache_ref")), tmp_path / "ref", env)
    events = interrupt(argv(str(tmp_path / "cache_run")), tmp_path / "run", env, seed=13, kills=3, work_s=work,
                       progress=lambda out: (out / "summary.json").is_file())
    assert any(e.get("progress") is False for e in events), events  # killed before the scores were written
    _finish(argv(str(tmp_path / "cache_run")), tmp_path / "run", env)
    for name in ("scores.csv", "summary.json"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    t = pd.read_csv(tmp_path / "run" / "scores.csv")
    assert list(t["id"]) == [f"s{i:02d}" for i in range(12)]
    print(f"score: work {work:.1f} s, kills {events}")


def test_demo_resumes_after_kill_9(tmp_path: Path) -> None:
    argv = ["demo", "--n-generate", "6", "--steps", "8", "--max-relax-steps", "10", "--reference-limit", "30",
            "--n-crystals", "3", "--n-proteins", "3", "--hull", "mp-elements", "--workers", "1",
            "--protein-lengths", "20", "--protein-per-length", "2", "--protein-steps", "5",
            "--protein-reference-limit", "10", "--quiet"]
    env = _env(tmp_path / "cache")
    work = reference(argv, tmp_path / "ref", env)
    stages = ("generated/manifest.json", "relaxed/relax_results.csv", "summary.json", "proteins_flow/manifest.json",
              "proteins_jump/manifest.json", "proteins_flow_scores/summary.json", "proteins_jump_scores/summary.json")
    events = interrupt(argv, tmp_path / "run", env, seed=14, kills=2, work_s=work,
                       progress=lambda out: sum((out / f).is_file() for f in stages))
    assert any(e.get("progress", len(stages)) < len(stages) for e in events), events  # killed before the end
    _finish(argv, tmp_path / "run", env)
    ref, run = tmp_path / "ref", tmp_path / "run"
    for name in ("scores.csv", "generated/manifest.json", "relaxed/relax_results.csv", "as_generated/scores.csv",
                 "proteins_flow/manifest.csv", "proteins_jump/manifest.csv", "proteins_jump/samples.fasta",
                 "proteins_jump/pdb/length_20_0001.pdb"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name
    for rot in ("flow", "jump"):
        a, b = ((d / f"proteins_{rot}_scores" / "scores.csv").read_text().replace(str(d), "OUT") for d in (run, ref))
        assert a == b, rot

    def summary(d: Path) -> dict[str, Any]:
        s = json.loads((d / "summary.json").read_text())
        s.pop("input", None)  # names the run folder
        return s

    assert summary(run) == summary(ref)
    a, b = (json.loads((d / "demo_summary.json").read_text()) for d in (run, ref))
    for key in ("generation", "relaxation"):
        for d in (a, b):
            d[key].pop("out"), d[key].pop("source", None)  # name the run folder
        assert a[key] == b[key], key
    assert np.isclose(a["scores"]["cov_recall"], b["scores"]["cov_recall"])
    pa, pb = (json.loads(json.dumps(d["protein_generation"]).replace(str(f), "OUT")) for d, f in ((a, run), (b, ref)))
    for p in (pa, pb):
        for r in p["runs"].values():
            r["generation"].pop("wall_s"), r["generation"].pop("samples_per_s")
    assert pa == pb and set(pa["runs"]) == {"flow", "jump"}
    print(f"demo: work {work:.1f} s, kills {events}")
