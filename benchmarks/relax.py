"""Benchmark: batched in-flight CHGNet relaxation vs chgnet's serial StructOptimizer.

Setting: 64 structures (first 32 of Perov-5 test + first 32 of Carbon-24 test, every atom rattled by
N(0, 0.05^2) A per axis, seed 0), FIRE + FrechetCellFilter, fmax 0.1 eV/A, 300 steps, both methods
in this process, interleaved in rounds (batched, serial, serial, batched, ...) so that machine
load hits both alike. Torch threads and BLAS limits are the same for both.

Last line JSON: throughput_ratio (structures/s ours / serial), energy_agreement (share of
structures whose final energies agree within 5 meV/atom), peak_rss_mb, and details.

    .venv/bin/python benchmarks/relax.py            # full size
    .venv/bin/python benchmarks/relax.py --n 8      # quick
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="structures (half Perov-5, half Carbon-24)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--fmax", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both methods)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    from pipeline.common.perturb import rattle
    from pipeline.crystals.relax import BatchedRelaxer, RelaxStatus, load_chgnet, relax_serial
    from structures.data import load_crystals

    half = args.n // 2
    structs = load_crystals("perov_5", "test", limit=half).structures + \
        load_crystals("carbon_24", "test", limit=args.n - half).structures
    structs = rattle(structs, 0.05, seed=0)
    # interleave perovskites and carbons so every round has both
    order = [i for pair in zip(range(half), range(half, args.n)) for i in pair] + list(range(2 * half, args.n))
    structs = [structs[i] for i in order]
    model = load_chgnet("0.3.0")
    relaxer = BatchedRelaxer(model, fmax=args.fmax, max_steps=args.steps, batch_size=args.batch_size)
    relaxer.relax(structs[:2], progress=False)  # warm-up (first forward, lazy imports) for both
    relax_serial(structs[:1], model, fmax=args.fmax, max_steps=2, progress=False)

    rounds = [structs[i::args.rounds] for i in range(args.rounds)]
    t_b = t_s = 0.0
    res_b, res_s = [], []
    for k, chunk in enumerate(rounds):
        for method in (("batched", "serial") if k % 2 == 0 else ("serial", "batched")):
            t0 = time.perf_counter()
            if method == "batched":
                res_b += relaxer.relax(chunk, progress=False)
                t_b += time.perf_counter() - t0
            else:
                res_s += relax_serial(chunk, model, fmax=args.fmax, max_steps=args.steps, progress=False)
                t_s += time.perf_counter() - t0
        print(f"round {k + 1}/{len(rounds)}: batched {t_b:.1f} s, serial {t_s:.1f} s (cumulative)", flush=True)

    ok = [(b, s) for b, s in zip(res_b, res_s) if b.status != RelaxStatus.FAILED and s.status != RelaxStatus.FAILED]
    d = np.abs(np.array([b.e_final - s.e_final for b, s in ok])) * 1000.0  # meV/atom
    steps_b = sum(r.n_steps for r in res_b)
    steps_s = sum(r.n_steps for r in res_s)
    out = {
        "benchmark": "relax", "n_structures": len(structs), "fmax": args.fmax, "max_steps": args.steps,
        "batch_size": args.batch_size, "torch_threads": args.threads,
        "seconds_batched": round(t_b, 2), "seconds_serial": round(t_s, 2),
        "throughput_batched": round(len(structs) / t_b, 4), "throughput_serial": round(len(structs) / t_s, 4),
        "throughput_ratio": round(t_s / t_b, 3),
        "steps_batched": steps_b, "steps_serial": steps_s,
        "step_throughput_ratio": round((steps_b / t_b) / (steps_s / t_s), 3),
        "converged_batched": sum(r.status == RelaxStatus.CONVERGED for r in res_b),
        "converged_serial": sum(r.status == RelaxStatus.CONVERGED for r in res_s),
        "failed_batched": sum(r.status == RelaxStatus.FAILED for r in res_b),
        "energy_abs_diff_mev_per_atom": {"median": float(np.median(d)), "p95": float(np.quantile(d, 0.95)),
                                         "max": float(d.max())} if len(d) else {},
        "energy_agreement": round(float(np.mean(d <= 5.0)) if len(d) else float("nan"), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "goal_throughput_ratio": 1.5,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
