"""Ship a trained protein model as the `generate proteins` default (``pipeline/models/protein_small.safetensors``).

    .venv/bin/python tools/ship_protein_model.py runs/protein_small/best.safetensors --steps 50 \\
        --status "step 5,250 of the CPU run" [--evaluation quality.json] [--out pipeline/models/protein_small.safetensors]

Copies the tensors and the training record of a ``genmatch train proteins`` export unchanged and adds to the
record: ``sampling`` (the default number of time points ``generate proteins`` uses for this model), ``status``
(one line) and, when given, ``evaluation`` (the last-line JSON of ``benchmarks/protein_model_quality.py``).
Writes the safetensors file (atomically) and a readable ``.json`` copy of the record beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.common.model_file import MODELS_DIR, ship_model_file  # noqa: E402
from pipeline.proteins.network.checkpoint import load_protein_network  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a genmatch protein checkpoint (e.g. runs/protein_small/best.safetensors)")
    p.add_argument("--steps", type=int, required=True, help="default sampler time points for this model")
    p.add_argument("--status", required=True, help="one line: what this model is")
    p.add_argument("--evaluation", type=Path, default=None, help="JSON from benchmarks/protein_model_quality.py")
    p.add_argument("--out", type=Path, default=Path(MODELS_DIR) / "protein_small.safetensors")
    args = p.parse_args(argv)
    load_protein_network(args.source)  # refuse anything that is not a loadable protein model
    updates = {"sampling": {"steps": args.steps}, "status": args.status, "sanity_check": None}
    if args.evaluation is not None:
        updates["evaluation"] = json.loads(args.evaluation.read_text().strip().splitlines()[-1])
    out = ship_model_file(args.source, args.out, updates)
    load_protein_network(out)
    print(f"shipped {args.source} -> {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out


if __name__ == "__main__":
    main()
