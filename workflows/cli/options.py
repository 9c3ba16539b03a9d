"""Argument types and the command table of the ``genmatch`` command line.

Every option is validated when it is parsed (finite numbers, ranges), so a bad value exits 2 with one
line before any file is read or written. Commands are rows of one table (:class:`Command`): a verb
path such as ``("relax", "crystals")``, its help, a function that adds its options and the function
that runs it. Protein verbs are rows too, not copies.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser that reports errors as one line (exit 2), never a usage dump + traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


@dataclass(frozen=True)
class Command:
    """One row of the command table: ``genmatch <path...>``."""

    path: tuple[str, ...]
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _number(text: str, kind: type, what: str, ok: Callable[[float], bool]) -> float:
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (math.isfinite(v) and ok(v)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return int(_number(text, int, "a positive integer", lambda v: v >= 1))


def nonnegative_int(text: str) -> int:
    return int(_number(text, int, "an integer >= 0", lambda v: v >= 0))


def positive_float(text: str) -> float:
    return _number(text, float, "a finite positive number", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    return _number(text, float, "a finite number >= 0", lambda v: v >= 0)


def finite_float(text: str) -> float:
    return _number(text, float, "a finite number", lambda v: True)


def unit_open_float(text: str) -> float:
    """A number in (0, 1)."""
    return _number(text, float, "a number in (0, 1)", lambda v: 0 < v < 1)


def probability(text: str) -> float:
    """A number in [0, 1]."""
    return _number(text, float, "a number in [0, 1]", lambda v: 0 <= v <= 1)


def unit_half_open_float(text: str) -> float:
    """A number in [0, 1)."""
    return _number(text, float, "a number in [0, 1)", lambda v: 0 <= v < 1)


def device(text: str) -> str:
    """``cpu`` or ``cuda[:i]`` present on this machine (torch is imported only for a cuda device)."""
    from pipeline.common.device import check_device
    from structures.errors import InputError

    try:
        return check_device("device", text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device ")) from None


def add_memory_option(p: argparse.ArgumentParser) -> None:
    """``--max-memory-gb``: the memory a protein request may need (estimated before it starts)."""
    p.add_argument("--max-memory-gb", type=positive_float, default=None, metavar="GB",
                   help="refuse, before starting, a request estimated to need more memory than this (default: the "
                   "memory available now: free RAM, or the GPU's free memory with --device cuda)")


def int_list(text: str) -> list[int]:
    """A comma-separated list of positive integers: ``70,100,200``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def add_run_options(p: argparse.ArgumentParser, out_required: bool = True, threads: bool = True) -> None:
    """``--out``, ``--restart``, ``--quiet`` (and ``--threads``): the options every run-folder stage has."""
    p.add_argument("--out", required=out_required, help="output (run) folder; a rerun of the same command "
                   "resumes, a different run there is refused unless --restart")
    p.add_argument("--restart", action="store_true", help="discard the run in OUT and start over")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if threads:
        p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")


def printable(text: str) -> str:
    """``text`` safe to print on any stream: a path that is not valid UTF-8 (surrogate escapes) is shown
    with backslash escapes instead of raising UnicodeEncodeError after the work is done."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def add_training_options(p: argparse.ArgumentParser, lr: float) -> None:
    """Optimiser, schedule, EMA, validation cadence, seed and DDP launch options of every trainer."""
    p.add_argument("--lr", type=positive_float, default=lr, help=f"peak learning rate ({lr:g})")
    p.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    p.add_argument("--warmup-steps", type=nonnegative_int, default=200, help="linear warm-up steps (200)")
    p.add_argument("--max-steps", type=positive_int, default=20000, help="optimizer steps (20000)")
    p.add_argument("--grad-clip", type=positive_float, default=1.0, help="gradient norm clip (1.0)")
    p.add_argument("--ema-decay", type=unit_half_open_float, default=0.999, help="EMA decay (0.999)")
    p.add_argument("--val-every", type=positive_int, default=500, help="validate + checkpoint every N steps")
    p.add_argument("--snapshots", action="store_true",
                   help="also keep every validated EMA model as OUT/snapshots/step_<step>.safetensors (to choose "
                        "a model by sample quality, not only by the held-out loss)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--devices", type=positive_int, default=1, help="processes/devices per node (DDP if > 1)")
    p.add_argument("--num-nodes", type=positive_int, default=1, help="nodes (DDP)")
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])


def set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)
