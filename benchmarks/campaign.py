"""A whole crystal design campaign, serial vs a local dask cluster: wall time and the share of each stage.

The campaign (``workflows.design``, docs/design.md): generate ``--n`` crystals with the shipped ``perov_5`` model
(``--steps`` sampler steps, batches of ``--batch-size``: the generate shards), relax them with CHGNet (FIRE,
``--relax-steps`` steps), score them (CDVAE validity and coverage against the first ``--reference-limit`` Perov-5
test crystals, E_hull from relax's energies against the MP elemental references), filter the usable ones, rank them
(weighted z-scores of E_hull, smaller better, and density) and export the top 10 as CIF. It runs twice from empty
folders, each with its own empty cache: serially in this process (``--threads`` torch threads), then on a
``LocalCluster`` of ``--workers`` single-threaded processes started by the campaign (its start-up counted in the
wall time). Reports each run's wall time, each stage's seconds and share of the campaign's, the speedup, and
whether the two exports are byte-identical. Writes under ``--out`` (default: a temporary folder, removed).

Usage: python benchmarks/campaign.py [--n 1000] [--workers 2] [--steps 20] [--relax-steps 50]
       [--reference-limit 200] [--batch-size B] [--threads 1] [--out DIR]
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPEC = """[campaign]
name = "benchmark {n} crystals"
material = "crystals"

[[stage]]
kind = "generate"
model = "perov_5"
n = {n}
steps = {steps}
batch_size = {batch_size}
seed = 0

[[stage]]
kind = "relax"
max_steps = {relax_steps}

[[stage]]
kind = "score"
reference = "perov_5:test"
reference_limit = {reference_limit}
hull = "mp-elements"
plots = false

[[stage]]
kind = "filter"
expr = "usable"

[[stage]]
kind = "rank"
method = "weighted"
columns = ["e_hull", "density"]
weights = [1.0, 0.5]
ascending = [true, false]

[[stage]]
kind = "export"
top_k = 10
formats = ["cif"]
"""


def _usage(msg: str) -> None:
    print(f"campaign.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="crystals to generate")
    ap.add_argument("--workers", type=int, default=2, help="processes of the local cluster")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps")
    ap.add_argument("--relax-steps", type=int, default=50, help="CHGNet FIRE steps")
    ap.add_argument("--reference-limit", type=int, default=200, help="Perov-5 test crystals to score against")
    ap.add_argument("--batch-size", type=int, default=None, help="crystals per generate batch (a shard); default: "
                    "about four shards per worker, at most 128")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the serial run")
    ap.add_argument("--out", default=None, help="keep the two campaign folders here")
    args = ap.parse_args(argv)
    for name in ("n", "workers", "steps", "reference_limit", "threads"):
        if getattr(args, name) < 1:
            _usage(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.relax_steps < 0:
        _usage(f"--relax-steps must be at least 0, got {args.relax_steps}")
    if args.batch_size is None:
        args.batch_size = max(1, min(128, math.ceil(args.n / (4 * args.workers))))
    elif args.batch_size < 1:
        _usage(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def _campaign(spec: Any, folder: Path, cache: Path, **how: Any) -> dict[str, Any]:
    """Run ``spec`` into ``folder`` with its own empty cache; wall time and seconds / share per stage kind."""
    from workflows.design import run

    os.environ["GENMATCH_CACHE"] = str(cache)  # read at call time, and by cluster workers started after this
    t0, cpu0 = time.perf_counter(), os.times()
    result = run(spec, folder, progress=False, **how)
    wall, cpu1 = time.perf_counter() - t0, os.times()
    stages = {p.stage.kind: round(result.seconds[p.stage.index], 2) for p in result.plans}
    return {"wall_s": round(wall, 2), "stages_s": stages,
            "share": {k: round(v / wall, 4) for k, v in stages.items()},
            "other_s": round(wall - sum(stages.values()), 2),  # start-up of the cluster, planning, reading
            "exported": len(result.table) if result.table is not None else 0, "export_dir": result.export_dir,
            # CPU seconds of this process (and of its waited-for children) and the machine's load at the end: how
            # much of the machine the run had (other work on it slows both runs; see docs/results)
            "cpu_s": round(sum(cpu1[:4]) - sum(cpu0[:4]), 1), "load_avg_1min_end": round(os.getloadavg()[0], 2)}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    from workflows.design import load_spec

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="genmatch-campaign-"))
    root.mkdir(parents=True, exist_ok=True)
    text = SPEC.format(n=args.n, steps=args.steps, batch_size=args.batch_size, relax_steps=args.relax_steps,
                       reference_limit=args.reference_limit)
    spec_file = root / "campaign.toml"
    spec_file.write_text(text)
    try:
        spec = load_spec(spec_file)
        serial = _campaign(spec, root / "serial", root / "cache_serial", threads=args.threads)
        cluster = _campaign(spec, root / "cluster", root / "cache_cluster", workers=args.workers)
        identical = _files(serial.pop("export_dir")) == _files(cluster.pop("export_dir"))
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    out = {"benchmark": "campaign", "n": args.n, "workers": args.workers, "steps": args.steps,
           "relax_steps": args.relax_steps, "reference_limit": args.reference_limit, "batch_size": args.batch_size,
           "serial_threads": args.threads, "serial": serial, "cluster": cluster,
           "speedup": round(serial["wall_s"] / cluster["wall_s"], 3), "exports_identical": identical,
           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
