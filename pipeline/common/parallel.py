"""Fan-out of independent work over local processes or a dask.distributed cluster.

``parallel_map(fn, items, workers, scheduler)``:

- ``scheduler`` given (``"tcp://host:8786"``): the items go to that dask.distributed cluster;
- else ``workers > 1``: a local pool of ``workers`` processes, by default a dask ``LocalCluster``
  (``backend="dask"``) or a ``concurrent.futures`` process pool (``backend="processes"``, less start-up);
- else: a plain loop in this process.

``fn`` is applied to chunks (lists) of items and must return one result per item; it must be a
module-level function (picklable). Results come back in input order. A progress bar (tqdm) counts
items.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence, TypeVar

from tqdm.auto import tqdm

from structures.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("dask", "processes")


@dataclass(frozen=True)
class ComputeConfig:
    """Where and how independent work runs: local processes, a dask cluster, the on-disk cache.

    ``dask_scheduler``: a dask.distributed scheduler address (``tcp://host:8786``), else ``workers``
    local processes with ``backend``; ``cache_dir``: None for the default cache, False for none.
    """

    workers: int = 1
    dask_scheduler: str | None = None
    backend: str = "processes"
    cache_dir: "str | os.PathLike | None | bool" = None
    progress: bool = True


def check_scheduler(address: str, timeout_s: float = 5.0, option: str = "--dask-scheduler") -> str:
    """``address`` if a dask scheduler can be reached there (a TCP connection to its host and port within
    ``timeout_s``), else :class:`InputError` naming the address and ``option``: a run never falls back to local
    work silently, and is refused before anything is written."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    host, colon, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if scheme not in ("tcp", "tls") or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{option} {address!r} is not a scheduler address; give tcp://host:port (e.g. "
                         "tcp://10.0.0.5:8786), or leave it out to work locally")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"{option} {address!r}: no dask scheduler answers there ({reason}); start one "
                         "(dask scheduler) or fix the address, or leave it out to work locally") from None
    return address


def chunked(items: Sequence[T], n_chunks: int) -> list[list[T]]:
    """Split into at most ``n_chunks`` contiguous chunks of near-equal size."""
    if not items:
        return []
    size = math.ceil(len(items) / max(1, n_chunks))
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def parallel_map(fn: Callable[[list[T]], list[R]], items: Sequence[T], workers: int = 1,
                 scheduler: str | None = None, backend: str = "dask", chunks_per_worker: int = 8,
                 desc: str | None = None, progress: bool = True) -> list[R]:
    """``[r for chunk in chunks(items) for r in fn(chunk)]``, computed in parallel (see module doc)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown parallel backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not items:
        return []
    if scheduler is None and workers <= 1:
        out: list[R] = []
        bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
        for chunk in chunked(items, max(1, min(len(items), 64))):
            out.extend(fn(chunk))
            bar.update(len(chunk))
        bar.close()
        return out
    n_workers = max(1, workers)
    chunks = chunked(items, n_workers * chunks_per_worker)
    if scheduler is not None or backend == "dask":
        return _dask_map(fn, chunks, n_workers, scheduler, desc, progress)
    results: list[list[R] | None] = [None] * len(chunks)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, leave=False)
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("fork")) as ex:
        futs = {ex.submit(fn, c): i for i, c in enumerate(chunks)}
        for fut in as_completed(futs):
            i = futs[fut]
            results[i] = fut.result()
            bar.update(len(chunks[i]))
    bar.close()
    return [r for chunk in results for r in (chunk or [])]


def _dask_map(fn: Callable[[list[Any]], list[Any]], chunks: list[list[Any]], workers: int,
              scheduler: str | None, desc: str | None, progress: bool) -> list[Any]:
    try:
        from distributed import Client, LocalCluster, as_completed as dask_completed
    except ImportError as exc:  # pragma: no cover - pinned dependency
        raise RuntimeError("dask.distributed is not installed; use backend='processes'") from exc
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise OSError(f"cannot reach the dask scheduler at {scheduler!r} ({exc}); check the "
                          "address (tcp://host:port) or leave --scheduler out to work locally") from exc
    try:
        futs = client.map(fn, chunks, pure=False)
        index = {f.key: i for i, f in enumerate(futs)}
        results: list[Any] = [None] * len(chunks)
        bar = tqdm(total=sum(len(c) for c in chunks), desc=desc, disable=not progress, leave=False)
        for fut in dask_completed(futs):
            i = index[fut.key]
            results[i] = fut.result()
            bar.update(len(chunks[i]))
        bar.close()
        return [r for chunk in results for r in chunk]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
