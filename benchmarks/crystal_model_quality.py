"""Sample quality of a crystal generator (CDVAE protocol): sample N crystals, decode, score against a test set.

Samples with the shipped (or a given) model via workflows.generate (in memory), scores the decoded crystals with
pipeline.score.crystals.score_crystals (structural / compositional validity, COV-R / COV-P with the data set's
CDVAE cutoffs, Wasserstein distances of density and N_el) against the reference split. Decode failures count
as invalid and as misses: validity and COV-P are reported over all N samples (``*_all`` keys).

Last line JSON: the summary (plus decode counts, sampler settings, model step, wall times).
Usage: python benchmarks/crystal_model_quality.py [--model perov_5] [--reference perov_5:test] [-n 1000]
       [--steps 250] [--temperature 0.7] [--corrector 0] [--scheduler cubic|kinetic_optimal] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="perov_5")
    ap.add_argument("--reference", default=None, help="default: <model's data set>:test")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--corrector", type=float, default=0.0)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reference-limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the score table / summary / plots here")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pipeline.common.io import read_crystal_input
    from pipeline.crystal_flow import load_crystal_model
    from pipeline.score.crystals import score_crystals
    from workflows.generate import generate_crystals

    model = load_crystal_model(args.model)
    dataset = model.dataset
    t0 = time.perf_counter()
    gen = generate_crystals(args.n, model, steps=args.steps, temperature=args.temperature, corrector=args.corrector,
                            scheduler=args.scheduler, seed=args.seed, batch_size=args.batch_size, progress=True)
    t_gen = time.perf_counter() - t0
    ref = read_crystal_input(args.reference or f"{dataset}:test", limit=args.reference_limit)
    t0 = time.perf_counter()
    scores = score_crystals(gen.structures, ref.structures, dataset=dataset if dataset in
                            ("perov_5", "carbon_24", "mp_20") else None, workers=args.workers, ids=gen.ids,
                            progress=True, backend="processes")
    t_score = time.perf_counter() - t0
    if args.out:
        from pipeline.score.report import write_scores

        write_scores(scores, args.out)
    s = dict(scores.summary)
    n_dec, n = len(gen.structures), args.n
    for k in ("struct_valid", "comp_valid", "valid", "cov_precision"):
        if s.get(k) is not None:
            s[f"{k}_all"] = s[k] * n_dec / n
    s.update(benchmark="crystal_model_quality", model=str(model.path.name if model.path else args.model),
             model_step=model.record.get("training", {}).get("step"), n_samples=n, decoded=n_dec,
             decode_failed=n - n_dec, steps=args.steps, temperature=args.temperature, corrector=args.corrector,
             scheduler=args.scheduler or model.scheduler, reference=ref.source, generate_s=round(t_gen, 1),
             score_s=round(t_score, 1))
    keys = ("struct_valid_all", "comp_valid_all", "valid_all", "cov_recall", "cov_precision_all", "wdist_density",
            "wdist_num_elems", "decoded")
    print("  ".join(f"{k} {s[k]:.4f}" if isinstance(s.get(k), float) else f"{k} {s.get(k)}" for k in keys))
    print(json.dumps(s, default=str))


if __name__ == "__main__":
    main()
