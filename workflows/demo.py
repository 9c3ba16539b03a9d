"""The main job on the embedded defaults (``make demo`` / ``genmatch demo``).

It runs what exists end to end on real data and the shipped model:

1. read the Perov-5 / Carbon-24 test splits and the protein backbone set (:mod:`structures.data`);
2. tokenise the crystals with the 878-token vocabulary and decode them back (StructureMatcher);
3. generate Perov-5 crystals with the shipped small KO-DFM model;
4. score them (CDVAE validity, property Wasserstein distances) against the Perov-5 test structures
   read in step 1, and score those real structures the same way as a reference point.

It prints a table and, with ``out_dir``, writes ``demo_summary.json`` (atomically).
CHGNet relaxation and coverage are left out to keep the demo short; ``genmatch relax crystals``
and ``genmatch score crystals`` run them (README).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from structures.atomic import atomic_open
from structures.crystal_roundtrip import roundtrip_report
from structures.data import load_crystals, load_proteins


def _protein_summary(n: int) -> dict[str, Any]:
    ps = load_proteins()
    idx = np.linspace(0, len(ps) - 1, min(n, len(ps))).astype(int)
    chains = [ps[int(i)] for i in idx]
    d = np.concatenate([np.linalg.norm(np.diff(ch.ca, axis=0), axis=1) for ch in chains])
    dssp = "".join(ch.dssp for ch in chains)
    return {
        "chains_in_set": len(ps),
        "chains_summarised": len(chains),
        "length_range": [min(map(len, chains)), max(map(len, chains))],
        "ca_ca_mean_A": float(d.mean()),
        "ca_ca_std_A": float(d.std()),
        "helix_fraction": sum(dssp.count(c) for c in "HGI") / len(dssp),
        "strand_fraction": sum(dssp.count(c) for c in "EB") / len(dssp),
    }


def _scores(p: dict[str, np.ndarray], r: dict[str, np.ndarray]) -> dict[str, Any]:
    """Validity rates and wdists of properties ``p`` (from ``basic_properties``) against ``r``."""
    from pipeline.score.properties import property_wdists, sample_valid

    out: dict[str, Any] = {k: float(p[k].mean()) for k in ("struct_valid", "comp_valid", "valid")}
    sample = sample_valid(p["valid"], n_samples=len(p["valid"]), seed=0)  # all valid ones, seeded order
    out.update(property_wdists(p["density"], p["n_elements"], r["density"], r["n_elements"], sample))
    return out


def run_demo(n_crystals: int = 200, n_proteins: int = 200, n_generate: int = 64,
             out_dir: str | None = None) -> dict[str, Any]:
    """Run the demo and return its summary (also printed; written as JSON when ``out_dir``)."""
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"roundtrip": {}, "scores": {}}
    test_sets = {name: load_crystals(name, "test", limit=n_crystals).structures for name in ("perov_5", "carbon_24")}
    for name, structures in test_sets.items():
        rep = roundtrip_report(structures)
        summary["roundtrip"][name] = {"n": rep.n, "match_rate": rep.match_rate,
                                      "max_length_error_A": rep.max_length_error,
                                      "max_site_error_A": rep.max_site_error}
    summary["proteins"] = _protein_summary(n_proteins)
    from pipeline.score.crystals import basic_properties

    ref = basic_properties(test_sets["perov_5"])  # computed once: scored itself and used as reference
    summary["scores"]["perov_5 test (real)"] = _scores(ref, ref)
    if n_generate > 0:
        from workflows.generate import generate_crystals

        t_gen = time.perf_counter()
        gen = generate_crystals(n_generate, "perov_5", seed=0, progress=False)
        summary["generation"] = {**gen.summary, "seconds": round(time.perf_counter() - t_gen, 2)}
        if gen.structures:
            summary["scores"]["perov_5 generated"] = _scores(basic_properties(gen.structures), ref)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    _print(summary)
    if out_dir:
        with atomic_open(Path(out_dir) / "demo_summary.json") as fh:
            json.dump(summary, fh, indent=2)
    return summary


def _print(summary: dict[str, Any]) -> None:
    print("genmatch demo: real data -> tokens -> shipped model -> scores")
    print(f"{'tokeniser round trip':24s} {'n':>5s} {'matched':>8s} {'max len err':>12s} {'max site err':>13s}")
    for name, r in summary["roundtrip"].items():
        print(f"{name:24s} {r['n']:5d} {100 * r['match_rate']:7.1f}% {r['max_length_error_A']:10.3f} A "
              f"{r['max_site_error_A']:11.3f} A")
    if "generation" in summary:
        g = summary["generation"]
        print(f"generated {g['n']} Perov-5 crystals in {g['seconds']} s: {g['decoded']} decoded, "
              f"{g['decode_failed']} failed to decode")
    print(f"{'scores vs perov_5 test':24s} {'struct':>7s} {'comp':>7s} {'wdist rho':>10s} {'wdist N_el':>11s}")
    for name, s in summary["scores"].items():
        print(f"{name:24s} {100 * s['struct_valid']:6.1f}% {100 * s['comp_valid']:6.1f}% "
              f"{s['wdist_density']:10.3f} {s['wdist_num_elems']:11.3f}")
    p = summary["proteins"]
    print(f"proteins: {p['chains_in_set']} chains; {p['chains_summarised']} summarised, lengths "
          f"{p['length_range'][0]}-{p['length_range'][1]}, CA-CA {p['ca_ca_mean_A']:.3f} +- "
          f"{p['ca_ca_std_A']:.3f} A, helix {p['helix_fraction']:.3f}, strand {p['strand_fraction']:.3f}")
    print(f"done in {summary['seconds']} s")
