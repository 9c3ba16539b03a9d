"""Ship a trained crystal model as a `generate crystals --model NAME` default (``pipeline/models/<name>_small...``).

    .venv/bin/python tools/ship_crystal_model.py runs/c24_metric/snapshots/step_0002000.safetensors \\
        --name carbon_24 --status "..." --evaluation quality.json [--evaluation more.json] [--out FILE]

Copies the tensors and the training record of a ``genmatch train crystals`` export unchanged and adds to the
record ``status`` (one line) and ``evaluation`` (the last-line JSON of each ``benchmarks/crystal_model_quality.py``
run given, in order). Writes the safetensors file (atomically) and a readable ``.json`` copy of the record beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.common.model_file import MODELS_DIR, ship_model_file  # noqa: E402
from pipeline.crystals.flow import DEFAULT_MODELS, load_crystal_model  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="a genmatch crystal checkpoint (e.g. runs/x/best.safetensors)")
    p.add_argument("--name", required=True, choices=sorted(DEFAULT_MODELS), help="the embedded default it replaces")
    p.add_argument("--status", required=True, help="one line: what this model is")
    p.add_argument("--evaluation", type=Path, action="append", default=[],
                   help="JSON from benchmarks/crystal_model_quality.py (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="default: pipeline/models/<the default's file>")
    args = p.parse_args(argv)
    model = load_crystal_model(args.source)  # refuse anything that is not a loadable crystal model
    if model.dataset != args.name:
        p.error(f"{args.source} was trained on {model.dataset!r}, not {args.name!r}")
    evaluation = [json.loads(f.read_text().strip().splitlines()[-1]) for f in args.evaluation]
    out = ship_model_file(args.source, args.out or Path(MODELS_DIR) / DEFAULT_MODELS[args.name],
                          {"status": args.status, "evaluation": evaluation or None})
    load_crystal_model(out)
    print(f"shipped {args.source} -> {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out


if __name__ == "__main__":
    main()
