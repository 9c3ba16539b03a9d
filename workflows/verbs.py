"""What every verb of the Python API shares (:mod:`workflows.crystals`, :mod:`workflows.proteins`): the config
from a config and/or its fields, torch threads for one call, the run arguments' checks.

A verb is ``verb([inputs,] config=None, *, out_dir=None, threads=None, restart=False, progress=True, **fields)``;
bad arguments raise :class:`~structures.errors.InputError` naming the argument (``score(out_dir=...)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Iterator, TypeVar

from structures.errors import InputError
from structures.validate import check_bool, check_int

C = TypeVar("C")

__all__ = ["check_run_args", "make_config", "torch_threads"]


def make_config(cls: type[C], config: C | None, fields: dict[str, Any], verb: str) -> C:
    """``config`` (or the defaults) with ``fields`` replaced: one new config, validated when made. An unknown
    field or a config of another class raises :class:`InputError` naming it (and listing the valid fields)."""
    if config is not None and not isinstance(config, cls):
        raise InputError(f"{verb}(config=...) must be a {cls.__name__}, got {type(config).__name__}")
    valid = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise InputError(f"{verb}(): unknown field(s) {', '.join(unknown)} of {cls.__name__}; valid: "
                         f"{', '.join(valid)}")
    if config is not None and not fields:
        return config
    return dataclasses.replace(config, **fields) if config is not None else cls(**fields)  # type: ignore[type-var]


@contextlib.contextmanager
def torch_threads(verb: str, threads: int | None) -> Iterator[None]:
    """torch intra-op threads = ``threads`` inside (restored after); None leaves them as they are."""
    if threads is None:
        yield
        return
    check_int(f"{verb}(threads=...)", threads, minimum=1)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_run_args(verb: str, out_dir: Any, restart: Any, progress: Any, required: bool = False) -> None:
    """``out_dir`` a folder path (or None unless ``required``: training always writes a run folder), ``restart``
    and ``progress`` booleans."""
    if required and not isinstance(out_dir, (str, os.PathLike)):
        raise InputError(f"{verb}(out_dir=...) must be a folder path (training always writes a run folder), got "
                         f"{type(out_dir).__name__}")
    if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
        raise InputError(f"{verb}(out_dir=...) must be a folder path or None, got {type(out_dir).__name__}")
    check_bool(f"{verb}(restart=...)", restart)
    check_bool(f"{verb}(progress=...)", progress)
