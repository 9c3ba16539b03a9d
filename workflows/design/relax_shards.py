"""A campaign's relax stage in shards on a dask.distributed cluster, crystals and proteins alike (docs/design.md,
"On a cluster").

The stage folder stays the verb's run folder (:func:`pipeline.common.run.open_run`, opened here with the kind,
run settings and inputs fingerprint the verb opens it with), so a relax that ran in shards and one that ran
serially are the same files, and either resumes the other:

1. The usable structures not yet in the stage's checkpoint (``relax_checkpoint.jsonl``; an interrupted serial
   run keeps its finished structures) are cut into contiguous shards of :func:`relax_shards` structures. A shard
   is named by its content, ``shards/relax-<hash of the input fingerprint and its ids>``, so a rerun with other
   shards never meets a folder of another shard.
2. Each shard is relaxed by the verb (:func:`pipeline.crystals.relax.run.relax_crystals`,
   :func:`pipeline.proteins.relax.run.relax_proteins`) into its own run folder, one task per shard on the cluster
   (:func:`workflows.design.distributed.fan_out`); its checkpoint resumes it, so a worker killed mid-shard loses
   only the structures in flight.
3. The campaign process merges the shards' checkpoint rows (line for line) and relaxed files (byte for byte) into
   the stage folder (:func:`_merge_relax`, one function for both materials), and the verb, called last, finds
   every usable structure done: it writes the rows of the unusable ones, ``relax_results`` and the summary.

A structure's result must not depend on what it is relaxed with: CHGNet's batched forward pass gives each crystal
the same numbers whatever it is batched with (bit for bit, :mod:`pipeline.crystals.relax.efs`), and a protein is minimised alone by OpenMM on the CPU platform with
one thread, deterministic forces and fixed build seeds (:mod:`pipeline.proteins.relax.amber`). A dask worker runs
its task in a thread beside an event loop that draws from Python's global ``random``, from which OpenMM's Modeller
draws the hydrogens' starting positions, so the build must seed a generator of its own. Both materials are checked
byte for byte against the serial verb, in this process and on a 2-process cluster
(tests/workflows/design/test_shards.py, test_distributed.py, test_relax_shards.py). Only the internal checkpoint
differs: its lines in shard order (the unusable structures' rows last) and each row's ``index`` its place in its
shard; the verb's tables and files, written from it by id, are the same.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Callable

from pipeline.common.io import read_checkpoint_lines
from structures.atomic import atomic_open, atomic_path
from workflows.design.distributed import SHARDS, fan_out

__all__ = ["relax_crystals_sharded", "relax_protein_shard", "relax_proteins_sharded", "relax_shard", "relax_shards"]


def relax_shards(n_usable: int, workers: int, batch_size: int = 1) -> int:
    """Structures per relax shard: about four shards per worker (ceil(n / (4 w))), but at least half a batch
    (CHGNet's in-flight batching needs structures to fill its slots; proteins are relaxed one at a time,
    ``batch_size`` 1) and at least one."""
    return max(1, math.ceil(batch_size / 2), math.ceil(n_usable / (4 * max(1, workers))))


# ----------------------------------------------------------------------------------------------------- crystals
def relax_shard(config: Any, folder: str, name: str, inp: Any) -> int:
    """Relax one shard (a :class:`~pipeline.common.io.CrystalInput` of usable structures) with the verb into its
    own run folder ``folder/shards/<name>``; returns its structure count."""
    from pipeline.crystals.relax.run import relax_crystals

    relax_crystals(inp, config, Path(folder) / SHARDS / name, progress=False)
    return len(inp)


def relax_crystals_sharded(structures: Path, config: Any, folder: Path, address: str | None, workers: int,
                           progress: bool) -> int:
    """Relax the crystals of the folder ``structures`` in shards on the cluster at ``address`` (None: in this
    process) and merge them into the relax run folder ``folder`` (module docstring); returns the number of
    shards. The caller then calls the verb, which finds every usable structure done."""
    from pipeline.crystals.inputs import as_crystal_input
    from pipeline.crystals.relax.run import CHECKPOINT, CHGNET_MAX_Z

    inp = as_crystal_input(str(structures), "relax(structures=...)")
    inp.require_some_usable()
    problems = inp.usable(max_z=CHGNET_MAX_Z)
    twin = _Twin("relax-crystals", CHECKPOINT, _cif_name, _relax_item)
    size_of = partial(relax_shards, workers=workers, batch_size=config.batch_size)
    return _sharded(twin, config, folder, inp, inp.structures, problems, size_of, (address, progress))


def _relax_item(config: Any, folder: str, item: tuple[str, Any]) -> int:
    """:func:`relax_shard` of one ``(name, shard)`` item (module-level, so dask can pickle it)."""
    return relax_shard(config, folder, item[0], item[1])


def _cif_name(ident: str) -> str:
    """A crystal's file under ``relaxed/`` (as :func:`pipeline.crystals.relax.run.relax_crystals` names it)."""
    return f"{ident}.cif"


# ----------------------------------------------------------------------------------------------------- proteins
def relax_protein_shard(config: Any, folder: str, name: str, inp: Any) -> int:
    """Relax one shard (a :class:`~pipeline.proteins.score.inputs.ProteinInput` of usable chains) with the verb
    into its own run folder ``folder/shards/<name>``, one chain at a time in this process (``workers`` 1: the
    cluster is the parallelism, and a dask worker may not fork; ``workers`` does not key the run folder);
    returns its chain count."""
    from pipeline.proteins.relax.run import relax_proteins

    relax_proteins(inp, dataclasses.replace(config, workers=1), Path(folder) / SHARDS / name, progress=False)
    return len(inp)


def relax_proteins_sharded(structures: Path, config: Any, folder: Path, address: str | None, workers: int,
                           progress: bool) -> int:
    """Relax the protein chains of the folder ``structures`` (PDB / mmCIF files) all-atom in shards on the cluster
    at ``address`` (None: in this process) and merge them into the relax run folder ``folder`` (module
    docstring); returns the number of shards. The caller then calls the verb, which finds every usable chain
    done and writes the failed rows of the unusable ones, the table and the summary."""
    from pipeline.proteins.relax.run import CHECKPOINT, pdb_name
    from pipeline.proteins.score.inputs import as_protein_input

    inp = as_protein_input(str(structures), argument="relax(backbones=...)")
    twin = _Twin("relax-proteins", CHECKPOINT, pdb_name, _relax_protein_item)
    return _sharded(twin, config, folder, inp, inp.chains, inp.problems, partial(relax_shards, workers=workers),
                    (address, progress))


def _relax_protein_item(config: Any, folder: str, item: tuple[str, Any]) -> int:
    """:func:`relax_protein_shard` of one ``(name, shard)`` item (module-level, so dask can pickle it)."""
    return relax_protein_shard(config, folder, item[0], item[1])


# ------------------------------------------------------------------------------------------- shared by both
@dataclasses.dataclass(frozen=True)
class _Twin:
    """What differs between the materials' relax shards: the verb's run kind, its checkpoint file, a structure's
    file name under ``relaxed/`` and the task of one shard."""

    kind: str
    checkpoint: str
    file_name: Callable[[str], str]
    task: Callable[[Any, str, tuple[str, Any]], int]


def _sharded(twin: _Twin, config: Any, folder: Path, inp: Any, items: list[Any], problems: list[str | None],
             size_of: Callable[[int], int], where: tuple[str | None, bool]) -> int:
    """Open the relax run folder as the verb does, relax the shards of :func:`_cut` on the cluster at
    ``where[0]`` (None: in this process; ``where[1]``: progress) and merge them (:func:`_merge_relax`); returns
    the number of shards."""
    from pipeline.common.run import fingerprint, open_run

    address, progress = where
    with open_run(folder, twin.kind, config.run_settings(), fingerprint([inp.fingerprint, inp.ids])):
        done = read_checkpoint_lines(folder / twin.checkpoint)
        shards = _cut(inp, items, problems, done, size_of)
        if shards:
            fan_out(partial(twin.task, config, str(folder)), shards, address, "relax shards", progress)
        _merge_relax(folder, done, [name for name, _ in shards], twin.checkpoint, twin.file_name)
    return len(shards)


def _cut(inp: Any, items: list[Any], problems: list[str | None], done: dict[str, str],
         size_of: Callable[[int], int]) -> list[tuple[str, Any]]:
    """The n usable structures of ``inp`` (``problems[i]`` None) not in ``done``, in input order, cut into
    contiguous shards of ``size_of(n)`` (:func:`relax_shards`): ``(name, input)`` pairs, the input of the same type
    as ``inp`` (``type(inp)(ids, items, source, problems, fingerprint)``: a :class:`~pipeline.common.io.CrystalInput`
    or a :class:`~pipeline.proteins.score.inputs.ProteinInput`), its name ``relax-<the first 16 hex digits of
    fingerprint([inp.fingerprint, ids])>``."""
    from pipeline.common.run import fingerprint

    usable = [i for i, p in enumerate(problems) if p is None and inp.ids[i] not in done]
    size = size_of(len(usable))
    shards = []
    for idx in (usable[s:s + size] for s in range(0, len(usable), size)):
        ids = [inp.ids[i] for i in idx]
        key = fingerprint([inp.fingerprint, ids])
        shards.append((f"relax-{key[:16]}", type(inp)(ids, [items[i] for i in idx], inp.source, [None] * len(idx),
                                                      key)))
    return shards


def _merge_relax(folder: Path, done: dict[str, str], shards: list[str], checkpoint: str,
                 file_name: Callable[[str], str] = _cif_name) -> None:
    """The rows already ``done`` and the shards' finished rows into ``folder``'s checkpoint (one line per
    structure, the lines unchanged) and each shard row's relaxed file ``relaxed/<file_name(id)>`` into
    ``folder/relaxed`` (copied byte for byte; a failed row has none), atomically. The verbs write a structure's
    file before its checkpoint line, so a finished row's file is complete."""
    lines = dict(done)
    for name in shards:
        shard = folder / SHARDS / name
        for ident, line in read_checkpoint_lines(shard / checkpoint).items():
            src = shard / "relaxed" / file_name(ident)
            if src.is_file():
                with atomic_path(folder / "relaxed" / src.name) as tmp:
                    shutil.copyfile(src, tmp)
            lines[ident] = line
    with atomic_open(folder / checkpoint) as f:
        f.write("".join(line + "\n" for line in lines.values()))
