"""benchmarks/campaign.py on 8 crystals: the last line is the JSON of a serial and a 2-process cluster campaign,
with every stage's seconds and share, and the two exports byte-identical; bad sizes exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "campaign.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

import campaign  # noqa: E402

STAGES = ["generate", "relax", "score", "filter", "rank", "export"]


@pytest.mark.slow  # ~55 s: a serial and a 2-process cluster campaign
def test_the_campaign_benchmark_on_8_crystals(tmp_path: Path) -> None:
    """About 50 s on 2 shared cores, most of it the local cluster's start-up and its workers' imports."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, str(SCRIPT), "--n", "8", "--workers", "2", "--steps", "3",
                        "--relax-steps", "3", "--reference-limit", "5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["n"] == 8 and out["workers"] == 2 and out["batch_size"] == 1 and out["exports_identical"] is True
    for run in ("serial", "cluster"):
        assert list(out[run]["stages_s"]) == STAGES and out[run]["wall_s"] > 0
        assert 0.5 < sum(out[run]["share"].values()) <= 1.0 + 1e-3
        assert out[run]["exported"] >= 1
    assert out["speedup"] == pytest.approx(out["serial"]["wall_s"] / out["cluster"]["wall_s"], rel=1e-2)
    assert len(list((tmp_path / "cluster").glob("00-generate-*/batches/*.json"))) == 8  # 8 shards of one crystal


@pytest.mark.parametrize("argv, message", [(["--n", "0"], "--n must be at least 1"),
                                           (["--relax-steps", "-1"], "--relax-steps must be at least 0"),
                                           (["--batch-size", "0"], "--batch-size must be at least 1")])
def test_bad_sizes_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        campaign.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_default_batches_give_about_four_shards_per_worker() -> None:
    assert campaign.parse_args(["--n", "1000", "--workers", "2"]).batch_size == 125
    assert campaign.parse_args(["--n", "8", "--workers", "2"]).batch_size == 1
    assert campaign.parse_args(["--n", "100000"]).batch_size == 128
