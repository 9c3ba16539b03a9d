"""Sample quality of a crystal generator (CDVAE protocol): sample N crystals, decode, score against a test set.

Samples with the shipped (or a given) model via pipeline.crystals.generate (in memory), scores the decoded crystals
with pipeline.crystals.score.score.score_structures (structural / compositional validity, COV-R / COV-P with the data set's
CDVAE cutoffs, Wasserstein distances of density and N_el) against the reference split. Decode failures count
as invalid and as misses: validity and COV-P are reported over all N samples (``*_all`` keys).

With ``--relax`` the decoded crystals are also relaxed with CHGNet (batched FIRE, fmax 0.1, cell relaxed, up to
1,500 steps: the FlowMM protocol) and the relaxed ones are scored again, with E_hull of the relaxed energies against
``--hull`` (``default``: MP elemental references + CHGNet-relaxed energies of ``--hull-reference``, cached on disk
after the first run; ``mp-elements``; or a file, see pipeline.crystals.score.hull.build_hull): keys ``relaxed_*``.

Last line JSON: the summary (plus decode counts, sampler settings, model step, wall times, and the local geometry:
nearest-neighbour distance percentiles of samples vs reference and the share of sample sites whose nearest
neighbour lies in the reference's 1-99 % range).
Usage: python benchmarks/crystal_model_quality.py [--model perov_5] [--reference perov_5:test] [-n 1000]
       [--steps 250] [--temperature 0.7] [--corrector 0] [--scheduler cubic|kinetic_optimal] [--workers 1]
       [--relax --hull default --hull-reference perov_5:val]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
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
    ap.add_argument("--relax", action="store_true", help="also relax with CHGNet and score the relaxed crystals")
    ap.add_argument("--hull", default="default", help="hull for E_hull of relaxed crystals (default / mp-elements / file)")
    ap.add_argument("--hull-reference", default=None, help="structures of the default hull (default: <data set>:val)")
    ap.add_argument("--static-hull", action="store_true",
                    help="default hull from static CHGNet energies at the reference geometries (no relaxation)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from pipeline.common.io import read_crystal_input
    from pipeline.common.parallel import ComputeConfig
    from pipeline.crystals.flow import load_crystal_model
    from pipeline.common.io import CrystalInput
    from pipeline.crystals.generate import CrystalGenerateConfig, generate_crystals
    from pipeline.crystals.score.config import CrystalScoreConfig
    from pipeline.crystals.score.score import add_rates_over_all, score_structures

    model = load_crystal_model(args.model)
    dataset = model.dataset
    t0 = time.perf_counter()
    gen = generate_crystals(CrystalGenerateConfig(n=args.n, model=model, steps=args.steps, temperature=args.temperature,
                                                  corrector=args.corrector, scheduler=args.scheduler, seed=args.seed,
                                                  batch_size=args.batch_size), progress=True)
    t_gen = time.perf_counter() - t0
    ref = read_crystal_input(args.reference or f"{dataset}:test", limit=args.reference_limit)
    t0 = time.perf_counter()
    config = CrystalScoreConfig(dataset=dataset if dataset in ("perov_5", "carbon_24", "mp_20") else None)
    scores = score_structures(CrystalInput(gen.ids, gen.structures, "generated"), ref, config,
                              compute=ComputeConfig(workers=args.workers, backend="processes", progress=True))
    t_score = time.perf_counter() - t0
    if args.out:
        from pipeline.crystals.score.report import write_scores

        write_scores(scores, args.out)
    n_dec, n = len(gen.structures), args.n
    s = add_rates_over_all(replace(scores.summary), n_dec, n).to_dict()  # a copy: --out's summary.json has no _all
    s.update(_geometry(gen.structures, [r for r in ref.structures if r is not None][:500]))
    if args.relax:
        s.update(_relaxed_scores(args, gen, ref, dataset))
    s.update(benchmark="crystal_model_quality", model=str(model.path.name if model.path else args.model),
             model_step=model.record.get("training", {}).get("step"), n_samples=n, decoded=n_dec,
             decode_failed=n - n_dec, steps=args.steps, temperature=args.temperature, corrector=args.corrector,
             scheduler=args.scheduler or model.scheduler, reference=ref.source, generate_s=round(t_gen, 1),
             score_s=round(t_score, 1))
    keys = ("struct_valid_all", "comp_valid_all", "valid_all", "cov_recall", "cov_precision_all", "wdist_density",
            "wdist_num_elems", "decoded")
    print("  ".join(f"{k} {s[k]:.4f}" if isinstance(s.get(k), float) else f"{k} {s.get(k)}" for k in keys))
    if args.relax:
        print("  ".join(f"{k} {s.get(k)}" for k in ("relaxed_converged", "relaxed_median_e_hull", "relaxed_stable_rate",
                                                    "relaxed_cov_recall", "relaxed_cov_precision")))
    print(json.dumps(s, default=str))


def _nn_distances(structures, cutoff: float = 4.0):  # noqa: ANN001
    """Nearest-neighbour distance of every site (periodic images included), Angstrom ``[sum of sites]``."""
    import numpy as np

    out = []
    for s in structures:
        for nbrs in s.get_all_neighbors(cutoff):
            out.append(min((n.nn_distance for n in nbrs), default=cutoff))
    return np.asarray(out)


def _geometry(samples, reference) -> dict:  # noqa: ANN001
    """Local geometry of the decoded samples vs (up to 500) reference crystals: percentiles 5/50/95 of the
    nearest-neighbour distance per site, and the share of sample sites whose nearest neighbour lies inside the
    reference's 1-99 % range (for Carbon-24: a C-C bond length)."""
    import numpy as np

    nn, ref = _nn_distances(samples), _nn_distances(reference)
    lo, hi = np.percentile(ref, [1, 99])
    pct = lambda a: [round(float(v), 3) for v in np.percentile(a, [5, 50, 95])]  # noqa: E731
    return {"nn_distance_p5_p50_p95": pct(nn), "reference_nn_distance_p5_p50_p95": pct(ref),
            "share_nn_in_reference_range": round(float(np.mean((nn >= lo) & (nn <= hi))), 4),
            "reference_nn_range": [round(float(lo), 3), round(float(hi), 3)]}


def _relaxed_scores(args: argparse.Namespace, gen, ref, dataset: str | None) -> dict:  # noqa: ANN001
    """Relax the decoded samples (CHGNet), score the relaxed ones with E_hull: ``relaxed_*`` keys."""
    import numpy as np

    from pipeline.common.io import CrystalInput
    from pipeline.crystals.relax.run import CrystalRelaxConfig, relax_crystals
    from pipeline.crystals.score.config import CrystalScoreConfig
    from pipeline.crystals.score.run import score_crystals

    t0 = time.perf_counter()
    run = relax_crystals(dict(zip(gen.ids, gen.structures)), CrystalRelaxConfig(), progress=True)
    t_relax = time.perf_counter() - t0
    ok = [i for i, s in enumerate(run.structures) if s is not None]
    energies = run.energies_per_atom()
    t0 = time.perf_counter()
    relaxed = CrystalInput([gen.ids[i] for i in ok], [run.structures[i] for i in ok], "relaxed")
    config = CrystalScoreConfig(reference=ref, dataset=dataset if dataset in ("perov_5", "carbon_24", "mp_20")
                                else None, workers=args.workers, backend="processes", energies=energies[ok],
                                hull=args.hull, hull_reference=args.hull_reference or f"{dataset}:val",
                                hull_relax=not args.static_hull)
    scores = score_crystals(relaxed, config, progress=True)
    out = {f"relaxed_{k}": v for k, v in scores.summary.to_dict().items() if not isinstance(v, (list, dict)) or k ==
           "e_hull_quantiles"}
    st = scores.summary.stability
    eh = scores.table["e_hull"].to_numpy(dtype=float) if "e_hull" in scores.table else np.array([])
    out.update(relaxed_converged=float((run.table["status"] == "converged").mean()),
               relaxed_failed=int((run.table["status"] == "failed").sum()),
               relaxed_median_e_hull=st.e_hull_quantiles.get("0.5") if st is not None else None,
               relaxed_share_e_hull_below_0_1=float(np.mean(eh[np.isfinite(eh)] <= 0.1)) if np.isfinite(eh).any()
               else None, relax_s=round(t_relax, 1), relaxed_score_s=round(time.perf_counter() - t0, 1),
               hull=args.hull, hull_reference=args.hull_reference or f"{dataset}:val",
               hull_reference_energies="static" if args.static_hull else "relaxed")
    return out


if __name__ == "__main__":
    main()
