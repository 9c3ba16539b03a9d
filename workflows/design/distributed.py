"""A campaign's per-item work on a dask.distributed cluster: generate in shards, relax in batches, score by the
verb's own fan-out (docs/design.md, "On a cluster").

The stage folder stays the verb's run folder (:func:`pipeline.common.run.open_run`), so a stage that ran on a
cluster and one that ran serially are the same files, and either resumes the other:

- **generate**: shard k is batch k of the verb (crystals: ``batch_size`` crystals, atom counts drawn up front
  from the run seed; proteins: the chains sorted by length and cut by the residue budget), sampled from the verb's
  own seed for it, ``SeedSequence([seed, k])``, by the verb's own ``write_batch``
  (:func:`pipeline.crystals.generate.write_batch`, :func:`pipeline.proteins.generate.write_batch`), so a sample
  does not depend on which worker drew it or on how many there are. The campaign process opens the run folder
  with the verb's ``prepare_generation`` (its ``run.json``, as the verb would write it), the workers write the
  structures and then ``batches/<k>.json`` atomically, and the verb, called last, finds every batch done and
  writes the manifest. A shard is done when its batch record exists: a worker or the campaign killed mid-shard
  loses that shard only, and a rerun (or dask, which reschedules a lost worker's tasks) redoes it.
- **relax** (both materials, :mod:`workflows.design.relax_shards`): the usable structures not yet done in
  contiguous shards, each relaxed by the verb into its own run folder ``shards/relax-<hash>``, then merged into the
  stage's run folder; the verb, called last, finds every structure done.
- **score**: the verb's ``dask_scheduler`` (fingerprints and energies fan out; the scores do not depend on it).

Without an address, ``workers`` > 1 starts a ``LocalCluster`` of that many single-threaded processes for the
campaign (:func:`campaign_cluster`).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

__all__ = ["SHARDS", "campaign_cluster", "fan_out", "generate_batch", "generate_sharded"]

SHARDS = "shards"


@contextlib.contextmanager
def campaign_cluster(workers: int, dask_scheduler: str | None) -> Iterator[str | None]:
    """The scheduler address the campaign's stages use: ``dask_scheduler`` itself (checked by the caller), else
    for ``workers`` > 1 a ``LocalCluster`` of ``workers`` processes with one thread each, closed on exit, else
    None (serial, in this process)."""
    if dask_scheduler is not None or workers <= 1:
        yield dask_scheduler
        return
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def fan_out(fn: Callable[[Any], Any], items: Sequence[Any], address: str | None, desc: str,
             progress: bool) -> list[Any]:
    """``[fn(x) for x in items]`` on the cluster at ``address``, one task per item, in order (``address`` None:
    in this process, one after the other; the same files)."""
    from pipeline.common.parallel import parallel_map

    if address is None:
        return parallel_map(partial(_each, fn), list(items), workers=1, desc=desc, progress=progress)
    return parallel_map(partial(_each, fn), list(items), workers=len(items), scheduler=address,
                        chunks_per_worker=1, desc=desc, progress=progress)


def _each(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    """``fn`` of each item of a chunk (parallel_map hands out chunks)."""
    return [fn(x) for x in chunk]


# ------------------------------------------------------------------------------------------------------ generate
@lru_cache(maxsize=4)
def _crystal_model(model: Any) -> Any:
    from pipeline.crystals.generate import load_model

    return load_model(model)


@lru_cache(maxsize=2)
def _protein_model(model: Any, device: str) -> Any:
    from pipeline.proteins.network.checkpoint import load_protein_model

    return load_protein_model(model, device)


def _prepare(material: str, config: Any) -> Any:
    """The verb's :class:`PreparedGeneration` of ``config`` (the model cached per process)."""
    model = (_crystal_model(config.model) if material == "crystals" else
             _protein_model(config.model, config.device))
    return _verb_module(material).prepare_generation(config, model)


def generate_batch(material: str, config: Any, out: str, k: int) -> int:
    """Shard ``k`` of a generate run in ``out``: the verb's ``write_batch`` of batch k (its structures, then
    ``batches/<k>.json`` last); nothing, without loading a model, when that record exists. Returns the samples
    written."""
    module = _verb_module(material)
    if module.batch_record(out, k).is_file():
        return 0
    return module.write_batch(_prepare(material, config), config, out, k)


def _verb_module(material: str) -> Any:
    if material == "crystals":
        import pipeline.crystals.generate as module
    else:
        import pipeline.proteins.generate as module
    return module


def generate_sharded(material: str, config: Any, folder: Path, address: str | None, progress: bool) -> int:
    """The missing batches of the generate run in ``folder``, one task each on the cluster at ``address`` (module
    docstring; None: in this process); returns how many shards ran. The run folder is opened here with the
    verb's settings and inputs; the caller then calls the verb, which finds every batch done and writes the
    manifest."""
    from pipeline.common.run import open_run

    prep, module = _prepare(material, config), _verb_module(material)
    with open_run(folder, f"generate-{material}", prep.settings, prep.inputs):
        todo = [k for k in range(prep.n_batches) if not module.batch_record(folder, k).is_file()]
        if todo:
            fan_out(partial(generate_batch, material, config, str(folder)), todo, address, "generate shards",
                    progress)
    return len(todo)
