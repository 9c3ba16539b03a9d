"""Round-trip fidelity of the KO E.2 crystal tokenizer on the Perov-5 and Carbon-24 test sets.

decode(encode(s)) is compared with s by pymatgen's StructureMatcher (default tolerances) and by
the worst lattice-length, angle and per-site errors (see structures/crystals/roundtrip.py).
Also times vectorised batch encode/decode. Prints a human summary, then the full report as JSON
on the last line.

    python benchmarks/tokenizer_roundtrip.py [--datasets perov_5 carbon_24] [--split test]
        [--rounding nearest truncate] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from structures.crystals.roundtrip import roundtrip_report  # noqa: E402
from structures.crystals.tokens import decode_batch, encode_batch  # noqa: E402
from structures.data import load_crystals  # noqa: E402


def _jsonable(o: object) -> object:
    return o.item() if hasattr(o, "item") else str(o)  # numpy scalars


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["perov_5", "carbon_24"])
    ap.add_argument("--split", default="test")
    ap.add_argument("--rounding", nargs="+", default=["nearest", "truncate"], choices=["nearest", "truncate"])
    ap.add_argument("--limit", type=int, default=None, help="first N structures of each set")
    args = ap.parse_args(argv)

    results: dict[str, dict] = {}
    for name in args.datasets:
        t0 = time.perf_counter()
        ds = load_crystals(name, args.split, limit=args.limit)
        parse_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = encode_batch(ds.structures)
        enc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        dec = decode_batch(batch.tokens)
        dec_s = time.perf_counter() - t0
        timing = {"n": len(ds), "cif_parse_s": round(parse_s, 3), "encode_batch_s": round(enc_s, 3),
                  "decode_batch_arrays_s": round(dec_s, 4), "decode_valid": int(dec.valid.sum())}
        for rounding in args.rounding:
            rep = roundtrip_report(ds.structures, rounding=rounding, progress=False)
            key = f"{name}/{args.split}/{rounding}"
            results[key] = {**rep.to_dict(), "timing": timing}
            print(f"{key}: matched {rep.n_matched}/{rep.n} ({100 * rep.match_rate:.2f} %), "
                  f"max |dlength| {rep.max_length_error:.4f} A, max |dangle| {rep.max_angle_error:.3f} deg, "
                  f"max site error {rep.max_site_error:.4f} A (mean {rep.mean_site_error:.4f} A), "
                  f"unmatched {rep.unmatched[:10]}; matched with primitive_cell=False too: "
                  f"{rep.n_matched_same_cell}/{rep.n}", flush=True)
    print(json.dumps({"benchmark": "tokenizer_roundtrip", "results": results}, default=_jsonable))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
