"""Crystal structure prediction from a formula (CSP), against the DiffCSP / FlowMM tables (DiffCSP Table 1).

For each of ``--n-crystals`` test crystals (a fixed subset: the first N of a permutation of the test split seeded
with ``--subset-seed``; ``--subset tuning`` takes N from the other end of the same permutation, disjoint from the
reported ones, for choosing sampler settings), generate max(k) structures from its composition (atom count and
elements fixed, lattice and coordinates generated) and match each against the true structure
(``benchmarks/csp_match.py``: ``StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)``, valid samples only; a crystal
is matched when any of its first k samples matches; RMSE = ``get_rms_dist(...)[0]``, the best over the k samples,
averaged over the matched crystals).

Generation goes through the public conditioning API (``CrystalGenerateConfig(conditions=[CrystalConditions(
formula=..., z=...)])``) or, with ``--direct``, through :func:`csp_match.sample_composition_direct` (the sampler
with the element tokens revealed and fixed). With ``--rank static`` / ``relaxed`` the benchmark also answers with
one structure per crystal, the valid sample of the lowest CHGNet energy per atom among all max(k) (``relaxed``:
after a FIRE relaxation of at most ``--relax-steps`` steps; the relaxed structure is matched), and
``--relax-steps`` > 0 also reports the match of every sample (the first ``--relax-samples`` of each crystal)
after that relaxation (``relaxed_k*``).

Reports, per k: match rate, mean RMSE, and for k = 1 also the mean over the max(k) columns (each column is an
independent 1-sample draw: the same estimate with a smaller standard error). Time per generated structure is the
wall time of generation (decoding included) / (N max(k)), in this one process with ``--threads`` torch threads.
Writes nothing unless ``--out`` is given (then the JSON and the per-crystal RMSE table ``<out>.csv``).
Last line: JSON.

Usage: python benchmarks/csp.py --dataset perov_5 [--n-crystals 100] [--k 1,20] [--model perov_5] [--steps 250]
       [--temperature 0.7] [--corrector 0] [--scheduler NAME] [--threads 1] [--rank none|static|relaxed|both]
       [--relax-steps 0] [--relax-samples R] [--subset reported|tuning] [--overlap composition|structure|none]
       [--direct] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: published 1-sample and 20-sample values (match rate %, RMSE): DiffCSP Table 1 (CDVAE and DiffCSP rows), FlowMM
PUBLISHED = {
    "perov_5": {"k1": {"CDVAE": [45.31, 0.1138], "DiffCSP": [52.02, 0.0760], "FlowMM": [53.15, 0.0992]},
                "k20": {"DiffCSP": [98.60, 0.0128]}},
    "carbon_24": {"k1": {"CDVAE": [17.09, 0.2969], "DiffCSP": [17.54, 0.2759], "FlowMM": [23.47, 0.4122]},
                  "k20": {"DiffCSP": [88.47, 0.2192]}},
}


def _usage(msg: str) -> None:
    print(f"csp.py: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, choices=("perov_5", "carbon_24"))
    ap.add_argument("--n-crystals", type=int, default=100)
    ap.add_argument("--k", default="1,20", help="comma-separated numbers of samples per crystal")
    ap.add_argument("--model", default=None, help="model name or .safetensors file (default: the data set's)")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--corrector", type=float, default=0.0)
    ap.add_argument("--scheduler", default=None, help="sampling scheduler (default: the model's)")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed")
    ap.add_argument("--subset", choices=("reported", "tuning"), default="reported")
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--rank", choices=("none", "static", "relaxed", "both"), default="none")
    ap.add_argument("--relax-steps", type=int, default=0, help="FIRE steps of the short CHGNet relaxation")
    ap.add_argument("--relax-samples", type=int, default=None,
                    help="relax only the first R samples of each crystal (default: all; CHGNet is the slow part)")
    ap.add_argument("--direct", action="store_true", help="sample with the direct path, not CrystalConditions")
    ap.add_argument("--overlap", choices=("none", "composition", "structure"), default="composition",
                    help="split the match rates by what the val split (the models' training data) holds of each "
                         "test crystal: its composition, or (slower) a matching structure")
    ap.add_argument("--out", default=None, help="write the JSON here (and the per-crystal table next to it)")
    args = ap.parse_args(argv)
    try:
        args.ks = sorted({int(v) for v in args.k.split(",") if v.strip()})
    except ValueError:
        _usage(f"--k: give comma-separated positive integers, got {args.k!r}")
    if not args.ks or args.ks[0] < 1:
        _usage(f"--k: give comma-separated positive integers, got {args.k!r}")
    for name in ("n_crystals", "steps", "threads", "batch_size"):
        if getattr(args, name) < 1:
            _usage(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.temperature <= 0 or args.corrector < 0 or args.relax_steps < 0:
        _usage("--temperature must be > 0, --corrector and --relax-steps >= 0")
    if args.relax_samples is not None and args.relax_samples < 1:
        _usage(f"--relax-samples must be at least 1, got {args.relax_samples}")
    if args.rank in ("relaxed", "both") and args.relax_steps < 1:
        _usage("--rank relaxed needs --relax-steps >= 1")
    if args.out and Path(args.out).suffix != ".json":
        _usage(f"--out: give a .json file, got {args.out!r}")
    return args


def generate_conditioned(model: Any, truths: list[Any], k: int, config: Any) -> Any:
    """k samples per test crystal through the public API: one :class:`CrystalConditions` (reduced formula and its
    number of formula units z) per crystal, ``n = k`` each (:func:`pipeline.crystals.generate.generate_crystals`)."""
    from dataclasses import replace

    from csp_match import Generated

    from pipeline.crystals.conditions import CrystalConditions
    from pipeline.crystals.generate import generate_crystals

    conds = []
    for s in truths:
        formula, z = s.composition.get_reduced_formula_and_factor()
        conds.append(CrystalConditions(formula=formula.replace(" ", ""), z=int(z)))
    t0 = time.perf_counter()
    gen = generate_crystals(replace(config, n=k, conditions=conds), progress=False)
    seconds = time.perf_counter() - t0
    flat: list[Any] = [None] * (k * len(truths))
    for name, s in zip(gen.ids, gen.structures):
        flat[int(name.rsplit("_", 1)[1])] = s
    for i, failure in gen.failures:
        flat[int(i)] = failure
    return Generated([flat[i * k:(i + 1) * k] for i in range(len(truths))], seconds)


def rank_results(args: argparse.Namespace, samples: list[list[Any]], truths: list[Any], rms: Any) -> dict[str, Any]:
    """The CHGNet-ranked answers (one structure per crystal) and the match after a short relaxation."""
    from csp_match import (
        chgnet_relaxed,
        chgnet_static,
        lowest_energy,
        pick_rows,
        rms_matrix,
        summarize,
    )

    out: dict[str, Any] = {}
    if args.rank in ("static", "both"):
        t0 = time.perf_counter()
        e = chgnet_static(samples)
        out["ranked_static"] = summarize(pick_rows(rms, lowest_energy(e, samples)))
        out["ranked_static"]["seconds_per_structure"] = (time.perf_counter() - t0) / rms.size
        print(f"ranked by static CHGNet energy: {out['ranked_static']}", file=sys.stderr)
    if args.relax_steps:
        r = min(args.relax_samples or rms.shape[1], rms.shape[1])
        t0 = time.perf_counter()
        relaxed, e = chgnet_relaxed([row[:r] for row in samples], args.relax_steps)
        seconds = time.perf_counter() - t0
        rr = rms_matrix(relaxed, truths)
        out["relaxed_samples_per_crystal"] = r
        for k in args.ks:
            if k <= r:
                out[f"relaxed_k{k}"] = summarize(rr, k)
        out["relaxed_k1_mean"] = _column_mean(rr)
        out["relax_seconds_per_structure"] = seconds / rr.size
        if args.rank in ("relaxed", "both"):
            out["ranked_relaxed"] = summarize(pick_rows(rr, lowest_energy(e, relaxed)))
            print(f"ranked by relaxed CHGNet energy: {out['ranked_relaxed']}", file=sys.stderr)
        out["_relaxed_rms"] = rr
    return out


def overlap_results(args: argparse.Namespace, truths: list[Any], rms: Any, ranked: dict[str, Any]) -> dict[str, Any]:
    """Match rates per class of test crystal by what the val split holds of it (:func:`csp_match.training_overlap`):
    on Perov-5 nearly every composition occurs twice in the data set, with the two cations swapped between the A and
    the B site, so a test crystal whose composition is in val is the other polymorph of a training crystal."""
    import numpy as np
    from csp_match import summarize, training_overlap

    from structures.data import load_crystals

    val = load_crystals(args.dataset, "val").structures
    cats = np.array(training_overlap(truths, val, match=args.overlap == "structure"))
    out: dict[str, Any] = {"overlap_counts": {str(c): int((cats == c).sum()) for c in sorted(set(cats))}}
    for c in sorted(set(cats)):
        rows = cats == c
        out[f"overlap_{c}"] = {f"k{k}": summarize(rms[rows], k) for k in args.ks}
        out[f"overlap_{c}"]["k1_mean"] = _column_mean(rms[rows])
    print(f"by overlap with val: {out}", file=sys.stderr)
    return out


def _column_mean(rms: Any) -> dict[str, Any]:
    """The 1-sample match rate and RMSE averaged over the columns (each an independent 1-sample draw)."""
    import numpy as np

    hit = np.isfinite(rms)
    return {"match_rate": float(hit.mean()), "rmse": float(rms[hit].mean()) if hit.any() else None,
            "match_rate_stderr": float(hit.mean(1).std() / np.sqrt(len(rms))) if len(rms) > 1 else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from csp_match import (
        MATCHER,
        generate_direct,
        rms_matrix,
        subsets,
        summarize,
        valid_sample,
    )

    from pipeline.crystals.flow import load_crystal_model
    from pipeline.crystals.generate import CrystalGenerateConfig
    from pipeline.crystals.score.validity import compositional_validity
    from structures.data import load_crystals

    model = load_crystal_model(args.model or args.dataset)
    print(f"loading {args.dataset} test ...", file=sys.stderr)
    test = load_crystals(args.dataset, "test").structures
    if 2 * args.n_crystals > len(test):
        _usage(f"--n-crystals {args.n_crystals}: the reported and tuning subsets of the {len(test)} test crystals "
               "would overlap; give at most half")
    reported, tuning = subsets(len(test), args.n_crystals, args.subset_seed)
    idx = reported if args.subset == "reported" else tuning
    truths = [test[i] for i in idx]
    kmax = args.ks[-1]
    config = CrystalGenerateConfig(n=1, model=model, steps=args.steps, temperature=args.temperature,
                                   corrector=args.corrector, scheduler=args.scheduler, seed=args.seed,
                                   batch_size=args.batch_size)
    direct = args.direct or not _has_conditions()
    print(f"generating {kmax} x {len(truths)} ({'direct path' if direct else 'CrystalConditions'}) ...",
          file=sys.stderr)
    gen = (generate_direct(model, truths, kmax, config, args.batch_size) if direct
           else generate_conditioned(model, truths, kmax, config))
    print(f"generated in {gen.seconds:.0f} s; matching ...", file=sys.stderr)
    t0 = time.perf_counter()
    rms = rms_matrix(gen.samples, truths)
    res: dict[str, Any] = {"benchmark": "csp", "dataset": args.dataset, "model": str(model.path.name if model.path
                                                                                     else args.model),
                           "subset": args.subset, "subset_seed": args.subset_seed, "n_crystals": len(truths),
                           "k": args.ks, "steps": args.steps, "temperature": args.temperature,
                           "corrector": args.corrector, "scheduler": args.scheduler or model.scheduler,
                           "seed": args.seed, "threads": args.threads, "path": "direct" if direct else "conditions",
                           "matcher": MATCHER}
    for k in args.ks:
        res[f"k{k}"] = summarize(rms, k)
        print(f"k = {k}: {res[f'k{k}']}", file=sys.stderr)
    res["k1_mean"] = _column_mean(rms)
    res["decoded_rate"] = float(np.mean([bool(s) for row in gen.samples for s in row]))
    res["valid_rate"] = float(np.mean([valid_sample(s) for row in gen.samples for s in row]))
    # a test crystal whose composition SMACT rejects can never be matched (its samples are never valid)
    res["truths_smact_invalid"] = int(sum(not compositional_validity(t) for t in truths))
    res["seconds_per_structure"] = gen.seconds / (len(truths) * kmax)
    res["match_seconds"] = time.perf_counter() - t0
    ranked = rank_results(args, gen.samples, truths, rms)
    relaxed_rms = ranked.pop("_relaxed_rms", None)
    res.update(ranked)
    if args.overlap != "none":
        res.update(overlap_results(args, truths, rms, ranked))
    res["published"] = PUBLISHED[args.dataset]
    if args.out:
        _write(args.out, res, [str(i) for i in idx], rms, relaxed_rms)
    print(json.dumps(res))
    return res


def _has_conditions() -> bool:
    try:
        from pipeline.crystals.conditions import CrystalConditions  # noqa: F401
    except ImportError:
        return False
    return True


def _write(out: str, res: dict[str, Any], ids: list[str], rms: Any, relaxed: Any) -> None:
    """``out`` (the JSON) and ``<out stem>.csv``: per test crystal (its index in the test split) the RMSE of every
    sample (empty: no match), and after relaxation when measured."""
    import numpy as np

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    cols = [f"s{j}" for j in range(rms.shape[1])] + ([f"relaxed_s{j}" for j in range(relaxed.shape[1])]
                                                      if relaxed is not None else [])
    lines = [",".join(["test_index"] + cols)]
    table = rms if relaxed is None else np.concatenate([rms, relaxed], 1)
    for i, row in zip(ids, table):
        lines.append(",".join([i] + ["" if np.isnan(v) else f"{v:.5f}" for v in row]))
    path.with_suffix(".csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
