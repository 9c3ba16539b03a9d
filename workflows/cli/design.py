"""The design-campaign row of the command table: ``genmatch design SPEC.toml [--out DIR] [--dry-run]
[--workers N | --dask-scheduler ADDRESS]``.

Nothing of :mod:`workflows.design` is imported until the command runs (the help stays light).
"""

from __future__ import annotations

import argparse

from workflows.cli.options import Command, positive_int, printable


def _design_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.toml", help="the campaign spec (docs/design.md): [campaign] name and "
                   "material, then [[stage]] tables: generate, relax, score, filter, deduplicate, rank, export")
    p.add_argument("--out", default=None, help="the campaign folder (default: runs/design/<campaign name, odd "
                   "characters as _>); a rerun resumes, a folder of another campaign is refused")
    p.add_argument("--dry-run", action="store_true", help="print the plan (each stage's folder, reused or to run) "
                   "and change nothing")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (this process)")
    p.add_argument("--workers", type=positive_int, default=1, help="a local dask cluster of N single-threaded "
                   "processes runs the per-item work of generate (shards), relax (batches) and score; 1 (default): "
                   "serially in this process. The files are the same either way. With --dask-scheduler: the "
                   "workers that cluster has (relax makes about four shards per worker)")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS", help="run that work on the "
                   "dask.distributed cluster whose scheduler is at ADDRESS (tcp://host:8786), e.g. one started "
                   "with dask-jobqueue on Slurm or dask-kubernetes (docs/design.md); checked before anything runs")


def _cmd_design(args: argparse.Namespace) -> int:
    import re
    from pathlib import Path

    from workflows import design

    spec = design.load_spec(args.spec)
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name).strip("._") or "campaign"  # never a path of its own
    out = Path(args.out) if args.out else Path("runs") / "design" / folder
    if args.dry_run:
        print(printable(design.format_plan(spec, design.plan(spec, out))))
        return 0
    result = design.run(spec, out, threads=args.threads, progress=not args.quiet, workers=args.workers,
                        dask_scheduler=args.dask_scheduler)
    n = 0 if result.table is None else len(result.table)
    where = result.export_dir if result.export_dir is not None else result.folder
    print(printable(f"campaign {spec.name!r}: {len(result.ran)} stages run, "
                    f"{len(result.plans) - len(result.ran)} reused; {n} rows in the final table; see {where}"))
    return 0


COMMANDS: list[Command] = [
    Command(("design",), "run a design campaign from a TOML spec (generate -> ... -> export)",
            "Run the stages of a campaign spec in order, each into a run folder of the campaign folder keyed by its "
            "settings and its inputs: generate, relax (crystals: CHGNet), score, filter (expressions over the score "
            "table, e.g. \"valid and e_hull <= 0.05\"), deduplicate, rank (weighted z-scores or Pareto fronts) and "
            "export (the top K structures and top.csv). The spec is validated before anything runs: a bad spec "
            "exits 2 naming the key and its line. A rerun reuses finished stages; changing one stage's settings "
            "reruns that stage and those after it. --dry-run prints the plan. --workers N or --dask-scheduler "
            "ADDRESS runs the per-item work of generate, relax and score on a dask cluster, to the same files.",
            _design_args, _cmd_design),
]
