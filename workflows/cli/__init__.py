"""The ``genmatch`` command line.

Every subcommand has ``--help``. Exit codes: 0 success; 2 bad input (an option, a file, an output
folder that holds another run), with one line on stderr saying what, where and how to fix it, before
any output is created or changed; 1 an internal error (a bug: please report it; rerun with
``GENMATCH_DEBUG=1`` for the traceback). Commands are rows of one table (:data:`COMMANDS`).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence


from workflows.cli.crystals import COMMANDS as CRYSTAL_COMMANDS
from workflows.cli.design import COMMANDS as DESIGN_COMMANDS
from workflows.cli.predictor import COMMANDS as PREDICTOR_COMMANDS
from workflows.cli.proteins import GENERATE_COMMANDS as PROTEIN_COMMANDS
from workflows.cli.proteins import RELAX_COMMANDS as RELAX_PROTEIN_COMMANDS
from workflows.cli.proteins import SCORE_COMMANDS as SCORE_PROTEIN_COMMANDS
from workflows.cli.proteins import TRAIN_COMMANDS as TRAIN_PROTEIN_COMMANDS
from workflows.cli.options import (Command, Parser, UsageError, add_run_options, int_list, nonnegative_int,
                                 positive_int, printable)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]


def _cmd_info(args: argparse.Namespace) -> int:
    import json

    if args.checkpoint:
        from pipeline.proteins.network.checkpoint import describe_checkpoint

        desc = describe_checkpoint(args.checkpoint)
        if args.json:
            print(json.dumps(desc, indent=2, default=str))
        else:
            for k, v in desc.items():
                print(f"{k:20s} {', '.join(f'{a} {b}' for a, b in v.items()) if isinstance(v, dict) else v}")
        return EXIT_OK
    from workflows.cli.info import collect_info, format_info

    info = collect_info(count_entries=not args.fast)
    print(json.dumps(info, indent=2, default=str) if args.json else format_info(info))
    return EXIT_OK


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--fast", action="store_true", help="do not count entries of data sets")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="summarise a protein checkpoint instead (a MultiFlow .ckpt with config.yaml beside it, "
                   "or a genmatch .safetensors): sizes, parameters, where its config came from")

def _cmd_demo(args: argparse.Namespace) -> int:
    from workflows.demo import DemoConfig, run_demo

    config = DemoConfig(n_generate=args.n_generate, steps=args.steps, relax_max_steps=args.max_relax_steps,
                        hull=args.hull, reference_limit=args.reference_limit, workers=args.workers,
                        threads=args.threads, n_crystals=args.n_crystals, n_proteins=args.n_proteins,
                        protein_lengths=tuple(args.protein_lengths), protein_per_length=args.protein_per_length,
                        protein_steps=args.protein_steps, protein_reference_limit=args.protein_reference_limit)
    run_demo(config, args.out, restart=args.restart, progress=not args.quiet)
    return EXIT_OK


def _demo_args(demo: argparse.ArgumentParser) -> None:
    from workflows.demo.config import DemoConfig

    demo.add_argument("--n-generate", type=positive_int, default=200,
                      help="Perov-5 crystals to generate with the shipped model (default 200)")
    demo.add_argument("--steps", type=positive_int, default=250, help="CTMC sampler steps (default 250)")
    demo.add_argument("--max-relax-steps", type=nonnegative_int, default=1500,
                      help="CHGNet FIRE step limit (default 1500)")
    demo.add_argument("--hull", default="default", choices=["default", "mp-elements"],
                      help="E_hull reference: MP elemental refs + CHGNet-relaxed Perov-5 val crystals in the "
                      "samples' chemical systems (default; cached) or the elemental refs only (a lower bound)")
    demo.add_argument("--reference-limit", type=positive_int, default=None,
                      help="score against only the first N Perov-5 test crystals (default: all)")
    demo.add_argument("--workers", type=positive_int, default=None,
                      help="fingerprint processes (default: the available CPUs)")
    demo.add_argument("--threads", type=positive_int, default=1,
                      help="torch threads for sampling and CHGNet (default 1: fastest for 5-atom cells)")
    demo.add_argument("--n-crystals", type=positive_int, default=200,
                      help="test crystals per data set in the tokeniser round-trip check (default 200)")
    demo.add_argument("--n-proteins", type=positive_int, default=200, help="protein chains summarised (200)")
    d = DemoConfig()
    demo.add_argument("--protein-lengths", type=int_list, default=list(d.protein_lengths),
                      help="lengths of the generated proteins (default %s)" % ",".join(map(str, d.protein_lengths)))
    demo.add_argument("--protein-per-length", type=positive_int, default=d.protein_per_length,
                      help=f"proteins per length and rotation generator (flow, jump) (default {d.protein_per_length})")
    demo.add_argument("--protein-steps", type=positive_int, default=d.protein_steps,
                      help=f"protein sampler steps = network calls (default {d.protein_steps})")
    demo.add_argument("--protein-reference-limit", type=positive_int, default=d.protein_reference_limit,
                      help="protein novelty against only the first N of the 3,000 reference chains "
                      f"(default {d.protein_reference_limit}: a demo setting, each reference costs one TM-align "
                      "call per sample)")
    add_run_options(demo, out_required=False, threads=False)
    demo.set_defaults(out="runs/demo")


COMMANDS: list[Command] = [
    Command(("info",), "versions, data directory, devices, available models", "", _info_args, _cmd_info),
    Command(("demo",), "the main job on the embedded defaults (what `make demo` runs)",
            "Generate Perov-5 crystals with the shipped model, relax them with CHGNet (batched FIRE) and score "
            "them against Perov-5 test (CDVAE validity, COV-R/COV-P, wdist density / N_el, E_hull with the "
            "hull's coverage); then generate proteins with the shipped protein model, rotations by flow and by "
            "SO(3) jumps, and score them offline (DSSP, geometry, ProteinMPNN proxies, diversity, novelty vs the "
            "first reference chains). Writes OUT/demo_summary.json, OUT/summary.json, OUT/scores.csv/.parquet and "
            "PNG plots; OUT/generated, OUT/relaxed and OUT/proteins_* hold the stages. Rerun the same command to "
            "resume.",
            _demo_args, _cmd_demo),
    *CRYSTAL_COMMANDS,
    *PREDICTOR_COMMANDS,
    *SCORE_PROTEIN_COMMANDS,
    *PROTEIN_COMMANDS,
    *RELAX_PROTEIN_COMMANDS,
    *TRAIN_PROTEIN_COMMANDS,
    *DESIGN_COMMANDS,
]

GROUP_HELP = {"generate": "generate crystals (KO-DFM) or proteins",
              "relax": "relax crystals (CHGNet) or proteins (Amber)", "score": "score generated crystals or proteins",
              "train": "train a generator or a property predictor"}


def _needs_target(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UsageError(f"{p.prog}: say what to work on, e.g. '{p.prog} crystals' (see '{p.prog} --help')")

    return run


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of the command table: one subcommand per row, grouped by the first word of its path."""
    from structures.version import genmatch_version

    p = Parser(prog="genmatch", description="Generator Matching for proteins and crystals: "
               "generate, relax and score.")
    p.add_argument("--version", action="version", version=f"genmatch {genmatch_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    groups: dict[str, argparse._SubParsersAction] = {}
    for cmd in commands:
        parent = sub
        if len(cmd.path) == 2:
            verb = cmd.path[0]
            if verb not in groups:
                g = sub.add_parser(verb, help=GROUP_HELP.get(verb, verb))
                g.set_defaults(func=_needs_target(g))
                groups[verb] = g.add_subparsers(dest="target", metavar="TARGET", parser_class=Parser)
            parent = groups[verb]
        q = parent.add_parser(cmd.path[-1], help=cmd.help, description=cmd.description or cmd.help)
        cmd.add_arguments(q)
        q.set_defaults(func=cmd.run)
    return p


def exit_code(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception that reached the command line."""
    from structures.data import DataNotFoundError
    from structures.errors import InputError

    if isinstance(exc, (UsageError, InputError, DataNotFoundError)):
        return EXIT_USAGE, f"genmatch: error: {exc}" if not isinstance(exc, UsageError) else str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        return EXIT_FAILURE, f"genmatch: error: {exc}"
    return EXIT_FAILURE, (f"genmatch: internal error ({type(exc).__name__}: {str(exc)[:200]}); this is a bug - "
                          "rerun with GENMATCH_DEBUG=1 for a traceback")


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("GENMATCH_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        from pipeline.common.allocator import keep_freed_memory

        keep_freed_memory()  # the command owns its process: no re-mapping of big tensors per call
        return int(args.func(args) or 0)
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("genmatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `genmatch info | head`: the reader left; say nothing more, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, no traceback
        if debug:
            raise
        code, message = exit_code(exc)
        print(printable(message.replace("\n", " ")), file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
