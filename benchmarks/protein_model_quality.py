"""Sample quality of a protein generator: generate, score with the protein scorer, compare with real
chains of the same lengths.

For each rotation generator (``--rotations``, default flow, jump, superposition with weight 0.5 as in GM Table 3)
and each length (``--lengths``, default 70 and 100), ``-n`` co-designed samples of the shipped (or a given) model
with the default sampler of ``genmatch generate proteins`` (the checkpoint's number of steps, purity sequence
sampler, seed 0), scored offline by ``workflows.proteins.score``: secondary structure, radius of
gyration, clashes, CA-CA outliers, MPNN proxies (log-likelihood of the MPNN designs and of the co-designed sequence,
recovery of the co-designed sequence), diversity (clusters at TM 0.5 / samples, mean pairwise TM) and novelty.
Beside them, ``-n`` real chains of the embedded backbone set per length (lengths within ``--window`` of L, their
native sequences) scored the same way.

Novelty is measured against the first ``--reference-limit`` chains of the embedded backbone set (TM-align costs
~20-50 ms per pair on this CPU: the full 3,000 for 800 sets of samples would take days); the real chains are drawn from
outside that reference so that none is its own hit. Everything is written under ``--out`` as run folders, so a
rerun resumes (generation and scores are cached).

Last line JSON: {"rows": [{set, length, ... summary keys}], settings, wall times}.
Usage: python benchmarks/protein_model_quality.py [--model PATH] [--lengths 70,100] [-n 100]
       [--rotations flow,jump,superposition] [--steps N] [--precision fp32|bf16] [--reference-limit 150]
       [--workers 2] [--out runs/protein_quality]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEYS = ("n_scored", "helix", "strand", "coil", "radius_of_gyration_mean", "with_clashes", "with_ca_ca_outliers",
        "with_chain_breaks", "mpnn_log_likelihood", "codesign_log_likelihood", "mpnn_recovery", "n_clusters",
        "cluster_fraction", "mean_pairwise_tm", "novelty", "max_tm_mean", "n_reference")


def real_chains(length: int, n: int, window: int, skip: int) -> list:
    """``n`` chains of the embedded set with |L - length| <= window, from index ``skip`` on (not in the reference)."""
    from structures.data import load_proteins
    from structures.proteins.io import BackboneChain

    ds = load_proteins()
    picked = [i for i in range(skip, len(ds)) if abs(len(ds[i]) - length) <= window][:n]
    return [BackboneChain.from_coords(ds[i].coords, ds[i].sequence, name=ds[i].name) for i in picked]


def per_sample(table) -> dict[str, float]:
    """Means over the scored samples of the per-sample counts (the summary gives only the share of samples with
    at least one): CA-CA clashes, backbone-atom clashes, share of consecutive CA-CA distances off 3.80 +- 0.25 A."""
    t = table[table["status"] == "scored"]
    return {"ca_clashes_per_sample": float(t["n_ca_clashes"].mean()),
            "atom_clashes_per_sample": float(t["n_atom_clashes"].mean()),
            "ca_ca_outlier_share": float((t["n_ca_ca_outliers"] / (t["length"] - 1)).mean()),
            "ca_ca_mean": float(t["ca_ca_mean"].mean())}


def main() -> None:
    from workflows import proteins

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped protein model)")
    ap.add_argument("--lengths", default="70,100")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--rotations", default="flow,jump,superposition")
    ap.add_argument("--jump-weight", type=float, default=0.5)
    ap.add_argument("--steps", type=int, default=None, help="default: the checkpoint's setting")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--reference-limit", type=int, default=150)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-real", action="store_true", help="skip the real-chain rows")
    ap.add_argument("--out", type=Path, default=Path("runs/protein_quality"))
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    config = proteins.ProteinScoreConfig(reference="default", reference_limit=args.reference_limit,
                                         workers=args.workers)
    rows, walls = [], {}
    for length in lengths:
        sets: list[tuple[str, object]] = []
        for rot in [r for r in args.rotations.split(",") if r]:
            folder = args.out / f"gen_{rot}_{args.precision}_L{length}"
            t0 = time.perf_counter()
            g = proteins.generate(model=args.model, out_dir=folder, lengths=(length,), per_length=args.n,
                                  rotations=rot, jump_weight=args.jump_weight, steps=args.steps,
                                  precision=args.precision, progress=False).summary
            walls[f"generate_{rot}_L{length}"] = round(time.perf_counter() - t0, 1)
            sets.append((f"{rot}" + (f" ({args.precision})" if args.precision != "fp32" else ""), folder / "pdb"))
            steps = g.settings.get("sampler", {}).get("steps")
        if not args.no_real:
            sets.append(("real chains", real_chains(length, args.n, args.window, args.reference_limit)))
        for name, inp in sets:
            t0 = time.perf_counter()
            tag = name.split()[0] + ("_" + args.precision if not name.startswith("real") else "")
            res = proteins.score(inp, config, out_dir=args.out / f"score_{tag}_L{length}", threads=1,
                                 progress=False)
            walls[f"score_{tag}_L{length}"] = round(time.perf_counter() - t0, 1)
            row = {"set": name, "length": length, **{k: getattr(res.summary, k) for k in KEYS}, **per_sample(res.table)}
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
    from pipeline.proteins.network.checkpoint import default_protein_checkpoint, read_protein_checkpoint

    model = args.model or default_protein_checkpoint()
    info = read_protein_checkpoint(model).info
    print(json.dumps({"rows": rows, "model": str(model), "model_step": info.get("training", {}).get("step"),
                      "settings": {"n": args.n, "lengths": lengths, "steps": steps, "precision": args.precision,
                                   "jump_weight": args.jump_weight, "reference_limit": args.reference_limit,
                                   "real_window": args.window},
                      "wall_s": walls}, default=lambda x: float(x) if isinstance(x, np.floating) else str(x)))


if __name__ == "__main__":
    main()
