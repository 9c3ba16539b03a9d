"""Validation of the protein scorer on real chains of the embedded backbone set (docs/results/proteins.md, "Scoring").

    .venv/bin/python benchmarks/validate_proteins.py --n-dssp 200 --n-mpnn 200 --n-diversity 200 --n-novelty 200

- DSSP: per-residue agreement of pydssp's classes with the stored 8-state DSSP labels mapped to MultiFlow's
  3 classes (goal >= 90 %), over the first ``--n-dssp`` chains;
- ProteinMPNN recovery on native backbones (v_48_020, T 0.1, 8 sequences, seed 38; literature ~50 %),
  over ``--n-mpnn`` chains;
- diversity of the first ``--n-diversity`` chains (clusters at TM 0.5, mean pairwise TM);
- novelty of the first ``--n-novelty`` chains against chains 200..2999 (the "other 2,800"): ~1,900 TM-align
  calls per chain, so it prints progress per ``--chunk`` chains on stderr, and with ``--cache DIR`` a rerun
  resumes where it stopped.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.common.parallel import ComputeConfig  # noqa: E402
from pipeline.proteins.score.config import MpnnConfig  # noqa: E402
from pipeline.proteins.score.dssp import agreement, assign_dssp  # noqa: E402
from pipeline.proteins.score.reference import inline_spec  # noqa: E402
from pipeline.proteins.score.score import novelty, pairwise_tm  # noqa: E402
from pipeline.proteins.score.tm import Trace, diversity  # noqa: E402
from structures.data import load_proteins  # noqa: E402

HELD_OUT = 200  # chains 0..199 are the queries, 200..2999 the reference


def _mpnn_chunk(items: list[tuple[np.ndarray, str]]) -> list[float]:
    import torch

    from pipeline.proteins.score.mpnn import design

    torch.set_num_threads(1)
    return [float(np.mean(design(x, s, MpnnConfig()).recovery)) for x, s in items]


def main(argv: list[str] | None = None) -> dict:
    from pipeline.common.parallel import parallel_map

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-dssp", type=int, default=200)
    p.add_argument("--n-mpnn", type=int, default=200)
    p.add_argument("--n-diversity", type=int, default=200)
    p.add_argument("--n-novelty", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=None,
                   help="TM-align cache folder (a rerun resumes from it; default: a temporary one)")
    p.add_argument("--chunk", type=int, default=10, help="novelty queries per progress line (stderr)")
    args = p.parse_args(argv)
    if args.chunk < 1:
        p.error(f"--chunk must be >= 1, got {args.chunk}")
    ds = load_proteins()
    out: dict = {}
    t0 = time.perf_counter()
    agree, n_res = [], []
    for i in range(args.n_dssp):
        c = ds[i]
        agree.append(agreement(assign_dssp(c.coords).classes, c.dssp))
        n_res.append(len(c))
    if agree:
        out.update(dssp_chains=len(agree), dssp_agreement_per_residue=round(float(np.average(agree, weights=n_res)), 4),
                   dssp_agreement_chain_median=round(float(np.median(agree)), 4),
                   dssp_agreement_chain_p5=round(float(np.percentile(agree, 5)), 4), dssp_s=round(time.perf_counter() - t0, 1))
    if args.n_mpnn:
        t0 = time.perf_counter()
        rec = parallel_map(_mpnn_chunk, [(ds[i].coords, ds[i].sequence) for i in range(args.n_mpnn)],
                           workers=args.workers, backend="processes", progress=False)
        out.update(mpnn_chains=len(rec), mpnn_recovery_mean=round(float(np.mean(rec)), 4),
                   mpnn_recovery_median=round(float(np.median(rec)), 4), mpnn_s=round(time.perf_counter() - t0, 1))
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(args.cache) if args.cache else tmp
        compute = ComputeConfig(workers=args.workers, backend="processes", cache_dir=cache, progress=False)
        traces = [Trace(ds[i].ca.astype(np.float64), ds[i].sequence) for i in range(max(args.n_diversity, args.n_novelty))]
        hashes = [ds[i].name + f"#{i}" for i in range(len(traces))]
        if args.n_diversity:
            t0 = time.perf_counter()
            d = diversity(pairwise_tm(traces[:args.n_diversity], hashes[:args.n_diversity], compute))
            out.update(diversity_chains=d.n, n_clusters=d.n_clusters, cluster_fraction=round(d.cluster_fraction, 4),
                       mean_pairwise_tm=round(d.mean_pairwise_tm, 4), diversity_s=round(time.perf_counter() - t0, 1))
        if args.n_novelty:
            print(json.dumps(out), file=sys.stderr, flush=True)  # the other checks, before the long novelty search
            t0 = time.perf_counter()
            refs = list(range(HELD_OUT, len(ds)))
            spec = inline_spec([ds[i].name for i in refs], [Trace(ds[i].ca.astype(np.float64), ds[i].sequence)
                                                            for i in refs])
            hits: list[dict] = []
            for lo in range(0, args.n_novelty, args.chunk):  # chunks: progress, and a rerun resumes from the cache
                hi = min(lo + args.chunk, args.n_novelty)
                hits += novelty(traces[lo:hi], hashes[lo:hi], spec, compute)
                done = np.array([h["max_tm"] for h in hits])
                print(json.dumps({"novelty_done": len(hits), "novelty_so_far": round(1 - float(done.mean()), 4),
                                  "s": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
            mx = np.array([h["max_tm"] for h in hits])
            out.update(novelty_chains=len(hits), n_reference=len(refs), novelty=round(1 - float(mx.mean()), 4),
                       max_tm_median=round(float(np.median(mx)), 4), max_tm_above_0_5=round(float((mx > 0.5).mean()), 4),
                       alignments=int(sum(h["n_aligned"] for h in hits)), alignments_plain=len(hits) * len(refs),
                       novelty_s=round(time.perf_counter() - t0, 1))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
