"""Make the shipped reference data (``pipeline/crystals/score/reference_data/``) from the embedded data sets.

    .venv/bin/python tools/make_reference_data.py energies      [--work DIR] [--first CIF_FOLDER]
    .venv/bin/python tools/make_reference_data.py fingerprints  [--work DIR] [--workers 2]
    .venv/bin/python tools/make_reference_data.py pack          [--work DIR] [--out DIR]
    .venv/bin/python tools/make_reference_data.py check         [--n 20]     (recompute a sample, compare)

Values are computed with the library's own functions into a private cache folder (``--work``,
default ``build/reference_cache``; the same SQLite cache the pipeline uses, so an interrupted run
resumes where it stopped), then ``pack`` writes them as npz keyed by content hash
(:func:`pipeline.common.hashing.structure_hash`) plus ``manifest.json`` (versions and settings
that shaped them, source data set digests, counts). The shipped layer is switched off while
computing, so every value here is computed, never copied from an older shipped file.

- ``energies``: CHGNet (model 0.3.0) energies per atom after batched FIRE relaxation with the cell
  relaxed (fmax 0.1 eV/A, 1,500 steps, batch 32): the default hull's settings
  (``ReferenceHull.embedded_default``), of the Perov-5 **val** crystals. ``--first`` computes those in
  the chemical systems of a folder of CIFs (e.g. the demo's samples) first. ``--limit`` stops early;
  ``pack`` ships whatever is finished (a crystal not shipped is relaxed on demand, as before).
- ``fingerprints``: CDVAE structure + composition fingerprints of the Perov-5 and Carbon-24 **test**
  splits.

torch runs with one thread (tiny graphs; see workflows/demo/__init__.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# what shaped the shipped values: the default hull's settings (ReferenceHull.embedded_default)
ENERGY_SETTINGS = {"dataset": "perov_5", "split": "val", "model": "0.3.0", "relax": True, "fmax": 0.1,
                   "max_steps": 1500, "batch_size": 32, "optimizer": "FIRE", "cell_filter": "FrechetCellFilter"}
FP_SETS = (("perov_5", "test"), ("carbon_24", "test"))


def _no_shipped_layers() -> None:
    """Compute everything: never read a previously shipped file while making a new one."""
    import os

    os.environ["GENMATCH_REFERENCE_DATA"] = "off"


def _chemsys(comp) -> frozenset[str]:  # noqa: ANN001
    return frozenset(el.symbol for el in comp.elements)


def cmd_energies(args: argparse.Namespace) -> None:
    import torch

    from pipeline.crystals.score.energies import chgnet_energies
    from structures.data import load_crystals

    torch.set_num_threads(1)
    st = ENERGY_SETTINGS
    val = load_crystals(st["dataset"], st["split"]).structures
    order = list(range(len(val)))
    if args.first:
        from pipeline.common.io import read_crystal_input

        systems = {_chemsys(s.composition) for s in read_crystal_input(args.first).structures if s is not None}
        first = [i for i in order if any(_chemsys(val[i].composition) <= q for q in systems)]
        chosen = set(first)
        rest = [i for i in order if i not in chosen]
        print(f"{len(first)} of {len(val)} val crystals lie in the chemical systems of {args.first}: first",
              flush=True)
        order = first + rest
    if args.limit is not None:
        order = order[:args.limit]
    t0 = time.perf_counter()
    # large chunks (in-flight batching loses speed while a chunk drains); the first is the --first set;
    # each value goes to the cache as it finishes anyway (an interrupted run resumes)
    n_first = len(first) if args.first else 0
    bounds = sorted({0, n_first, *range(n_first, len(order), 1000), len(order)})
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        e = chgnet_energies([val[i] for i in idx], model=st["model"], relax=True, fmax=st["fmax"],
                            max_steps=st["max_steps"], batch_size=st["batch_size"], cache_dir=args.work,
                            progress=False)
        print(f"energies {b}/{len(order)} ({int(np.isnan(e).sum())} failed in chunk) "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


def cmd_fingerprints(args: argparse.Namespace) -> None:
    from pipeline.crystals.score.fingerprints import compute_fingerprints
    from structures.data import load_crystals

    for name, split in FP_SETS:
        t0 = time.perf_counter()
        ds = load_crystals(name, split).structures
        fp = compute_fingerprints(ds, workers=args.workers, cache_dir=args.work, progress=False)
        print(f"fingerprints {name}:{split} {len(ds)} ({int((~fp.struct_ok).sum())} failed) "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


def _versions(*pkgs: str) -> dict[str, str]:
    return {p: metadata.version(p) for p in pkgs}


def _source(name: str, split: str) -> dict[str, str]:
    from structures.cache import file_sha256
    from structures.data import resolve_dataset

    path = resolve_dataset(name, split)
    return {"dataset": f"{name}:{split}", "file": path.name, "sha256": file_sha256(path)}


def cmd_pack(args: argparse.Namespace) -> None:
    import pipeline.crystals.score.reference_data as rd
    from pipeline.common.cache import DiskCache
    from pipeline.common.hashing import structure_hash
    from structures.data import load_crystals

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"made_by": "tools/make_reference_data.py", "made": time.strftime("%Y-%m-%d")}

    # fingerprints: every structure of the test splits must be in the work cache
    cache = DiskCache(args.work, rd.FP_NAMESPACE)
    where: dict[str, tuple[int, int]] = {}  # hash -> (number in sources, row), first seen
    sources = []
    got_s: dict = {}
    got_c: dict = {}
    for name, split in FP_SETS:  # a split is shipped only when all of it is computed
        hs = [structure_hash(s) for s in load_crystals(name, split).structures]
        gs, gc = cache.get_arrays(f"s:{h}" for h in hs), cache.get_arrays(f"c:{h}" for h in hs)
        missing = sum(f"s:{h}" not in gs or f"c:{h}" not in gc for h in hs)
        if missing:
            print(f"{name}:{split}: {missing} of {len(hs)} fingerprints not computed yet (run `fingerprints`): "
                  "not shipped", file=sys.stderr)
            continue
        for i, h in enumerate(hs):
            where.setdefault(h, (len(sources), i))
        got_s.update(gs)
        got_c.update(gc)
        sources.append(_source(name, split))
    hashes = list(where)
    struct = np.stack([np.full(61, np.nan) if got_s[f"s:{h}"] is None else got_s[f"s:{h}"] for h in hashes])
    comp_rows: dict[bytes, int] = {}
    comp_index = np.empty(len(hashes), dtype=np.int32)
    for i, h in enumerate(hashes):
        c = got_c[f"c:{h}"].astype(np.float32)
        comp_index[i] = comp_rows.setdefault(c.tobytes(), len(comp_rows))
    comp = np.stack([np.frombuffer(b, dtype=np.float32) for b in comp_rows])
    np.savez_compressed(out / rd.FINGERPRINTS, hash=np.array(hashes, dtype="U32"),
                        struct=struct.astype(np.float32), comp_index=comp_index, comp=comp,
                        source=np.array([where[h][0] for h in hashes], dtype=np.int8),
                        index=np.array([where[h][1] for h in hashes], dtype=np.int32))
    manifest[rd.FINGERPRINTS] = {
        "namespace": rd.FP_NAMESPACE, "sources": sources,
        "columns": "hash, struct, comp_index -> comp, source (number in sources), index (row in that split)", "n": len(hashes), "n_compositions": len(comp_rows),
        "n_struct_failed": int(np.isnan(struct).all(axis=1).sum()), "dtype": "float32",
        "versions": _versions("matminer", "pymatgen"),
        "definition": "pipeline.crystals.score.fingerprints: CrystalNNFingerprint('ops') site mean [61], Magpie "
                      "ElementProperty of the cell composition [132]"}

    # energies: whatever is finished (the rest is computed on demand)
    st = ENERGY_SETTINGS
    tag = f"{st['model']}:relax-f{st['fmax']}-s{st['max_steps']}"
    val = load_crystals(st["dataset"], st["split"]).structures
    row: dict[str, int] = {}
    for i, s in enumerate(val):
        row.setdefault(f"{tag}:{structure_hash(s)}", i)
    keys = list(row)
    got = DiskCache(args.work, rd.ENERGY_NAMESPACE).get_json(keys)  # a failed relaxation is stored as None
    done = [k for k in keys if k in got]
    e = np.array([np.nan if got[k] is None else got[k] for k in done], dtype=np.float64)
    np.savez_compressed(out / rd.ENERGIES, key=np.array(done, dtype=f"U{max(map(len, done), default=1)}"),
                        e_per_atom=e, index=np.array([row[k] for k in done], dtype=np.int32))
    manifest[rd.ENERGIES] = {
        "namespace": rd.ENERGY_NAMESPACE, "sources": [_source(st["dataset"], st["split"])],
        "settings": st, "key": f"{tag}:<structure_hash>", "columns": "key, e_per_atom, index (row in the split)", "n": len(done), "n_in_split": len(keys),
        "complete": len(done) == len(keys), "n_failed": int(np.isnan(e).sum()),
        "versions": _versions("chgnet"), "also": _versions("torch", "ase", "pymatgen")}
    (out / rd.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for f in (rd.FINGERPRINTS, rd.ENERGIES, rd.MANIFEST):
        print(f"{out / f}: {(out / f).stat().st_size / 1e6:.2f} MB")
    print(json.dumps({k: {kk: v[kk] for kk in ("n",) if kk in v} for k, v in manifest.items()
                      if isinstance(v, dict)}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["energies", "fingerprints", "pack"])
    p.add_argument("--work", default=str(ROOT / "build" / "reference_cache"), help="private cache folder")
    p.add_argument("--out", default=str(ROOT / "pipeline" / "score" / "reference_data"))
    p.add_argument("--first", default=None, help="energies: folder of CIFs whose chemical systems go first")
    p.add_argument("--limit", type=int, default=None, help="energies: stop after this many val crystals")
    p.add_argument("--workers", type=int, default=2, help="fingerprints: processes")
    args = p.parse_args(argv)
    _no_shipped_layers()
    {"energies": cmd_energies, "fingerprints": cmd_fingerprints, "pack": cmd_pack}[args.what](args)


if __name__ == "__main__":
    main()
