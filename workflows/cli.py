"""The ``genmatch`` command line.

Every subcommand has ``--help``. Usage errors exit 2 with one line on stderr; a failure the user
can fix (missing data, bad file) exits 1 with one line; no tracebacks unless ``GENMATCH_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class UserError(Exception):
    """A failure the user can fix: missing data, unreadable file, unavailable feature (exit 1)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that reports errors as one line (exit 2), never a usage dump + traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _not_yet(feature: str, issue_hint: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UserError(f"'genmatch {feature}' is not yet available in this version ({issue_hint}); "
                        "see the status table in README.md")

    return run


def _cmd_info(args: argparse.Namespace) -> int:
    from workflows.info import collect_info, format_info

    info = collect_info(count_entries=not args.fast)
    if args.json:
        import json

        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_info(info))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from workflows.demo import run_demo

    run_demo(n_crystals=args.n_crystals, n_proteins=args.n_proteins, out_dir=args.out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from workflows import __version__

    p = _Parser(prog="genmatch", description="Generator Matching for proteins and crystals: "
                "generate, relax and score.")
    p.add_argument("--version", action="version", version=f"genmatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    info = sub.add_parser("info", help="versions, data directory, devices, available models")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument("--fast", action="store_true", help="do not count entries of data sets")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser("demo", help="the main job on the embedded defaults (what `make demo` runs)")
    demo.add_argument("--n-crystals", type=int, default=200, help="crystals per data set (default 200)")
    demo.add_argument("--n-proteins", type=int, default=200, help="protein chains (default 200)")
    demo.add_argument("--out", default=None, help="write the summary JSON here (atomic write)")
    demo.set_defaults(func=_cmd_demo)

    for name, what, hint in (
        ("generate", "generate proteins or crystals", "crystal/protein generation issues"),
        ("relax", "relax crystals with CHGNet", "crystal relaxation issue"),
        ("score", "score generated structures", "crystal/protein scoring issues"),
        ("train", "train a model", "generation issues"),
    ):
        sp = sub.add_parser(name, help=f"{what} (not yet available)")
        sp.add_argument("target", nargs="?", choices=["crystals", "proteins"], help="what to work on")
        sp.set_defaults(func=_not_yet(name, f"planned by the {hint}"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("GENMATCH_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("genmatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, no traceback
        if debug:
            raise
        from structures.data import DataNotFoundError

        kind = "error" if isinstance(exc, (UserError, DataNotFoundError, ValueError, OSError)) else \
            f"internal error ({type(exc).__name__}; rerun with GENMATCH_DEBUG=1 for a traceback)"
        print(f"genmatch: {kind}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
