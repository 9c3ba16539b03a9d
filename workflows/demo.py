"""The main job on the embedded defaults (``make demo`` / ``genmatch demo``).

Until the generation stages land it exercises what exists end to end on real data: read the
crystal benchmark splits and the protein backbone set through :mod:`structures.data`, and
summarise them (sizes, compositions, densities, nearest-neighbour distances, backbone geometry,
secondary structure). It prints a table and, with ``out_dir``, writes ``demo_summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from structures.atomic import atomic_open
from structures.data import load_crystals, load_proteins


def _crystal_summary(name: str, n: int) -> dict[str, Any]:
    ds = load_crystals(name, "test", limit=n)
    dens = np.array([s.density for s in ds.structures])
    nsites = np.array([len(s) for s in ds.structures])
    n_el = np.array([len(s.composition.elements) for s in ds.structures])
    # smallest periodic interatomic distance per structure (CDVAE structural validity: >= 0.5 A)
    dmin = np.array([
        np.min(s.distance_matrix + np.eye(len(s)) * 1e9) if len(s) > 1 else np.inf for s in ds.structures
    ])
    return {
        "structures": len(ds),
        "atoms_per_cell": [int(nsites.min()), int(nsites.max())],
        "density_mean": float(dens.mean()),
        "n_elements_mean": float(n_el.mean()),
        "min_distance_A": float(dmin.min()),
        "share_min_distance_ge_0.5A": float(np.mean(dmin >= 0.5)),
    }


def _protein_summary(n: int) -> dict[str, Any]:
    ps = load_proteins()
    idx = np.linspace(0, len(ps) - 1, min(n, len(ps))).astype(int)
    ca_ca, helix, strand, lengths = [], 0, 0, []
    for i in idx:
        ch = ps[int(i)]
        ca_ca.append(np.linalg.norm(np.diff(ch.ca, axis=0), axis=1))
        helix += sum(c in "HGI" for c in ch.dssp)
        strand += sum(c in "EB" for c in ch.dssp)
        lengths.append(len(ch))
    d = np.concatenate(ca_ca)
    total = sum(lengths)
    return {
        "chains_in_set": len(ps),
        "chains_summarised": len(idx),
        "length_range": [int(min(lengths)), int(max(lengths))],
        "ca_ca_mean_A": float(d.mean()),
        "ca_ca_std_A": float(d.std()),
        "helix_fraction": helix / total,
        "strand_fraction": strand / total,
    }


def run_demo(n_crystals: int = 200, n_proteins: int = 200, out_dir: str | None = None) -> dict[str, Any]:
    """Run the demo and return its summary (also printed; written as JSON when ``out_dir``)."""
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"crystals": {}, "proteins": {}}
    for name in ("perov_5", "carbon_24"):
        summary["crystals"][name] = _crystal_summary(name, n_crystals)
    summary["proteins"] = _protein_summary(n_proteins)
    summary["seconds"] = round(time.perf_counter() - t0, 2)

    print("genmatch demo: real data through structures/ (generation stages: see README status)")
    print(f"{'data set':12s} {'n':>5s} {'atoms':>7s} {'density':>8s} {'n_el':>5s} {'dmin>=0.5A':>10s}")
    for name, c in summary["crystals"].items():
        atoms = f"{c['atoms_per_cell'][0]}-{c['atoms_per_cell'][1]}"
        print(f"{name:12s} {c['structures']:5d} {atoms:>7s} {c['density_mean']:8.3f} "
              f"{c['n_elements_mean']:5.2f} {100 * c['share_min_distance_ge_0.5A']:9.1f}%")
    p = summary["proteins"]
    print(f"proteins: {p['chains_in_set']} chains; {p['chains_summarised']} summarised, lengths "
          f"{p['length_range'][0]}-{p['length_range'][1]}, CA-CA {p['ca_ca_mean_A']:.3f} +- "
          f"{p['ca_ca_std_A']:.3f} A, helix {p['helix_fraction']:.3f}, strand {p['strand_fraction']:.3f}")
    print(f"done in {summary['seconds']} s")
    if out_dir:
        with atomic_open(Path(out_dir) / "demo_summary.json") as fh:
            json.dump(summary, fh, indent=2)
    return summary
