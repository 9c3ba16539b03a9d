"""Benchmark: batched SO(3) exp + log on 100,000 rotations, ours (manifolds.so3) vs geomstats 2.8 (pytorch backend,
SpecialOrthogonal(3, point_type="vector")), same machine, same process, float64.

Rotation vectors: uniform axes, angles uniform in [0, pi). Prints one JSON object as its last line:
speedup_vs_geomstats (their time / ours, exp + log, best of --repeats), max_deviation (max abs difference of the exp
matrices, and of the log vectors where both libraries are exact: angle < pi - 0.02; geomstats, like MultiFlow, uses an
approximate branch within 0.01 of pi, so there we report each library's round-trip error |Exp(Log R) - R| instead).
Usage: python benchmarks/so3_ops.py [--n 100000] [--repeats 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["GEOMSTATS_BACKEND"] = "pytorch"  # must precede the first geomstats import
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from manifolds import so3  # noqa: E402


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    from geomstats.geometry.special_orthogonal import SpecialOrthogonal
    group = SpecialOrthogonal(3, point_type="vector")

    g = torch.Generator().manual_seed(0)
    angle = torch.rand(args.n, generator=g) * torch.pi
    v = so3.random_unit_vectors((args.n,), rng=g) * angle[:, None]

    # interleaved repeats (ours, theirs, ours, ...) so that a busy machine slows both alike; best of each
    fns = {"exp_ours": lambda: so3.exp(v), "exp_gs": lambda: group.matrix_from_rotation_vector(v)}
    r_ours = so3.exp(v)
    fns.update({"log_ours": lambda: so3.log(r_ours), "log_gs": lambda: group.rotation_vector_from_matrix(r_ours)})
    best = {k: float("inf") for k in fns}
    outs: dict[str, object] = {}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            t, outs[k] = _best(fn, 1)
            best[k] = min(best[k], t)
    t_exp_ours, t_exp_gs, t_log_ours, t_log_gs = best["exp_ours"], best["exp_gs"], best["log_ours"], best["log_gs"]
    v_ours, r_gs, v_gs = outs["log_ours"], outs["exp_gs"], outs["log_gs"]
    r_gs, v_gs = torch.as_tensor(r_gs), torch.as_tensor(v_gs)
    dev_exp = float((r_ours - r_gs).abs().max())
    away = angle < torch.pi - 0.02
    dev_log = float((v_ours - v_gs)[away].abs().max())
    near = ~away
    rt_ours_near = float((so3.exp(v_ours[near]) - r_ours[near]).abs().max())
    rt_gs_near = float((so3.exp(v_gs[near]) - r_ours[near]).abs().max())
    ours, theirs = t_exp_ours + t_log_ours, t_exp_gs + t_log_gs
    result = {
        "benchmark": "so3_ops",
        "n": args.n,
        "threads": args.threads,
        "dtype": "float64",
        "ours_s": {"exp": t_exp_ours, "log": t_log_ours, "total": ours},
        "geomstats_s": {"exp": t_exp_gs, "log": t_log_gs, "total": theirs},
        "speedup_exp": t_exp_gs / t_exp_ours,
        "speedup_log": t_log_gs / t_log_ours,
        "speedup_vs_geomstats": theirs / ours,
        "max_deviation_exp": dev_exp,
        "max_deviation_log": dev_log,
        "max_deviation": max(dev_exp, dev_log),
        "roundtrip_max_error": float((so3.exp(v_ours) - r_ours).abs().max()),
        "near_pi": {"count": int(near.sum()), "roundtrip_ours": rt_ours_near, "roundtrip_geomstats": rt_gs_near},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
