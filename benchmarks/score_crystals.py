"""Benchmark: crystal scoring (validity + coverage + property distances) vs a plain serial
implementation of the same CDVAE definitions, written here.

Setting: 1,000 structures (the first 1,000 of Perov-5 val, scored as if generated) against the
3,785-structure Perov-5 test set. Ours runs cold (empty cache, 2 worker processes), then warm
(cache filled by the cold run). The plain version loops over structures in this process with
matminer / SMACT / scipy called directly, no cache. Structures are parsed before timing starts.

Last line JSON: speedup_cold, speedup_warm (plain time / ours), metrics_equal (every metric value
agrees to 1e-9), the metrics and the timings.

    .venv/bin/python benchmarks/score_crystals.py                  # full size
    .venv/bin/python benchmarks/score_crystals.py --n 50 --n-ref 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# cold means cold: without this the shipped Perov-5 test fingerprints (pipeline/score/reference_data) would be found
os.environ.setdefault("GENMATCH_REFERENCE_DATA", "off")

STRUC_CUTOFF, COMP_CUTOFF = 0.2, 4.0  # CDVAE COV_Cutoffs["perov_5"]
METRICS = ("comp_valid", "struct_valid", "valid", "cov_recall", "cov_precision", "wdist_density", "wdist_num_elems")


def plain_scores(gen, ref, n_samples: int, seed: int) -> dict[str, float]:  # noqa: ANN001
    """CDVAE compute_metrics.py, written out plainly: one structure at a time, no cache."""
    from matminer.featurizers.composition.composite import ElementProperty
    from matminer.featurizers.site.fingerprint import CrystalNNFingerprint
    from scipy.spatial.distance import cdist
    from scipy.stats import wasserstein_distance
    from smact.screening import smact_validity

    comp_scaler = json.loads((Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cdvae" /
                              "comp_scaler.json").read_text())
    means, stds = np.array(comp_scaler["CompScalerMeans"]), np.array(comp_scaler["CompScalerStds"])
    cnn = CrystalNNFingerprint.from_preset("ops")
    ep = ElementProperty.from_preset("magpie")

    def fingerprints(s):  # noqa: ANN001, ANN202
        comp_fp = ep.featurize(s.composition)
        try:
            struct_fp = np.array([cnn.featurize(s, i) for i in range(len(s))]).mean(axis=0)
        except Exception:  # noqa: BLE001
            struct_fp = None
        return struct_fp, comp_fp

    def struct_valid(s, cutoff=0.5):  # noqa: ANN001, ANN202
        d = s.distance_matrix + np.diag(np.ones(len(s)) * (cutoff + 10.0))
        return not (d.min() < cutoff or s.volume < 0.1)

    sv = np.array([struct_valid(s) for s in gen])
    cv = np.array([smact_validity(s.composition, oxidation_states_set="smact14") for s in gen])
    valid = sv & cv
    gen_fp = [fingerprints(s) for s in gen]
    ref_fp = [fingerprints(s) for s in ref]
    g = [(a, b) for a, b in gen_fp if a is not None]
    r = [(a, b) for a, b in ref_fp if a is not None]

    def scale(c):  # noqa: ANN001, ANN202
        z = (np.array(c, dtype=float) - means) / stds
        return np.where(np.isnan(z), 0.0, z)

    sd = cdist(np.array([a for a, _ in g]), np.array([a for a, _ in r]))
    cd = cdist(scale([b for _, b in g]), scale([b for _, b in r]))
    cov_r = float(np.mean((sd.min(axis=0) <= STRUC_CUTOFF) & (cd.min(axis=0) <= COMP_CUTOFF)))
    cov_p = float(np.sum((sd.min(axis=1) <= STRUC_CUTOFF) & (cd.min(axis=1) <= COMP_CUTOFF)) / len(gen))
    idx = np.flatnonzero(valid)
    if len(idx) > n_samples:
        idx = np.sort(np.random.default_rng(seed).choice(idx, n_samples, replace=False))
    dens = [gen[i].density for i in idx]
    nel = [len(set(gen[i].species)) for i in idx]
    return {"comp_valid": float(cv.mean()), "struct_valid": float(sv.mean()), "valid": float(valid.mean()),
            "cov_recall": cov_r, "cov_precision": cov_p,
            "wdist_density": float(wasserstein_distance(dens, [s.density for s in ref])),
            "wdist_num_elems": float(wasserstein_distance(nel, [len(set(s.species)) for s in ref]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="scored structures (Perov-5 val)")
    ap.add_argument("--n-ref", type=int, default=None, help="reference structures (Perov-5 test; all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default="processes", choices=["dask", "processes"])
    ap.add_argument("--keep-cache", default=None, help="use this (empty) folder as the cache and keep it")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.score.config import CrystalScoreConfig
    from pipeline.crystals.score.score import score_structures
    from structures.data import load_crystals

    gen = load_crystals("perov_5", "val", limit=args.n).structures
    ref = load_crystals("perov_5", "test", limit=args.n_ref).structures
    n_samples = 1000

    def cpu() -> float:  # CPU seconds of this process and its finished children
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    t0, c0 = time.perf_counter(), cpu()
    plain = plain_scores(gen, ref, n_samples, seed=0)
    t_plain, c_plain = time.perf_counter() - t0, cpu() - c0
    print(f"plain serial: {t_plain:.1f} s ({c_plain:.1f} CPU s)", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.keep_cache or tmp
        if args.keep_cache and Path(cache).is_dir() and any(Path(cache).iterdir()):
            raise SystemExit(f"--keep-cache {cache}: folder must be empty (the cold run needs an empty cache)")
        t0, c0 = time.perf_counter(), cpu()
        config = CrystalScoreConfig(dataset="perov_5", n_samples=n_samples, seed=0)
        compute = ComputeConfig(workers=args.workers, backend=args.backend, cache_dir=cache, progress=False)
        cold = score_structures(gen, ref, config, compute=compute).summary
        t_cold, c_cold = time.perf_counter() - t0, cpu() - c0
        print(f"ours cold ({args.workers} workers, {args.backend}): {t_cold:.1f} s ({c_cold:.1f} CPU s)", flush=True)
        t0 = time.perf_counter()
        warm = score_structures(gen, ref, config, compute=compute).summary
        t_warm = time.perf_counter() - t0
        print(f"ours warm: {t_warm:.1f} s", flush=True)

    def same(a: float, b: float) -> bool:
        return bool(abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)))

    equal = all(same(plain[k], getattr(cold, k)) and same(plain[k], getattr(warm, k)) for k in METRICS)
    print(json.dumps({
        "benchmark": "score_crystals", "n_structures": len(gen), "n_reference": len(ref),
        "workers": args.workers, "backend": args.backend,
        "cpu_seconds_plain": round(c_plain, 1), "cpu_seconds_cold": round(c_cold, 1),
        "cpu_cores_used_plain": round(c_plain / t_plain, 2), "cpu_cores_used_cold": round(c_cold / t_cold, 2),
        "seconds_plain": round(t_plain, 2), "seconds_cold": round(t_cold, 2), "seconds_warm": round(t_warm, 2),
        "speedup_cold": round(t_plain / t_cold, 3), "speedup_warm": round(t_plain / t_warm, 3),
        "metrics_equal": equal, "metrics_plain": plain, "metrics_ours": {k: getattr(cold, k) for k in METRICS},
        "goal_speedup_cold": 1.8, "goal_speedup_warm": 10.0,
    }))


if __name__ == "__main__":
    main()
