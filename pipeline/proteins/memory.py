"""Memory of a protein request, estimated before the work starts, and the limit it must fit under.

The pair (edge) tensors of the networks are O(B x L^2 x C), so a long chain needs memory that grows with the square
of its length: 5,000 residues through the small model need about 29 GB for one sampler call. :func:`check_fits`
refuses a request whose estimate exceeds the limit with one :class:`~structures.errors.InputError` line naming the
estimate, the limit and the option that changes it, before any file is written.

The limit (:func:`memory_limit`) is ``max_memory_gb`` when given, else the memory available now: the GPU's free
memory for a ``cuda`` device, else the system's available RAM (psutil, or ``MemAvailable`` of /proc/meminfo); when
neither can be read there is no limit.

Estimates (from the peak resident memory of one call on CPU, fp32; the network's err 5-35 % high):

- genmatch / MultiFlow network (:func:`network_bytes`): ``4 B x L^2 x (2 (c_s + 2 c_z) + 4 H + 16)`` bytes per
  batch of B chains padded to L (measured per residue pair: ``small`` 0.93 kB at L = 2048, 0.96 kB at L = 1024;
  ``multiflow`` 3.7 kB at L = 384; the estimate: 1.15 kB and 4.3 kB); training keeps the activations of every
  block for the backward pass: x (``num_blocks`` + 2) (measured: 5.2 kB per pair for ``small`` at L = 512, 41 kB
  for ``multiflow`` at L = 256);
- ESMFold (:func:`esmfold_bytes`, not measured on the full model: a rough guide): twice its weight files (the
  state dict and the model while it loads) plus ``4 L^2 (8 c_pair + 2 heads)`` bytes for the folding trunk's
  pair state and the language model's attention.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.proteins.network.config import ProteinNetworkConfig

GB = 1e9
FLOAT = 4  # bytes; estimates are for float32 (bf16 autocast keeps the frames and attention in float32)

__all__ = ["available_bytes", "check_batches_fit", "check_fits", "esmfold_bytes", "memory_limit", "network_bytes", "pair_load"]


def available_bytes(device: str = "cpu") -> int | None:
    """Memory free for new work on ``device`` now: the GPU's free memory for ``cuda[:i]``, else the system's
    available RAM; None when it cannot be read."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError, ValueError):
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is installed with the project
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_limit(max_memory_gb: float | None, device: str = "cpu") -> tuple[int | None, str]:
    """(bytes, how it was found): ``max_memory_gb`` when given, else :func:`available_bytes`."""
    if max_memory_gb is not None:
        return int(max_memory_gb * GB), "the limit given"
    where = "GPU memory free" if str(device).startswith("cuda") else "memory available"
    return available_bytes(device), f"the {where} now"


def pair_load(batches: Iterable[Iterable[int]]) -> tuple[int, int, int]:
    """(B x L^2, B, L) of the heaviest batch, given each batch as its chain lengths (padded to the longest)."""
    best = (0, 0, 0)
    for lengths in batches:
        sizes = list(lengths)
        if sizes:
            n = max(sizes)
            best = max(best, (len(sizes) * n * n, len(sizes), n))
    return best


def network_bytes(cfg: "ProteinNetworkConfig", pairs: int, training: bool = False) -> int:
    """Peak memory of one network call on ``pairs`` = B x L^2 residue pairs (module docstring)."""
    per_pair = 2 * (cfg.ipa.c_s + 2 * cfg.ipa.c_z) + 4 * cfg.ipa.no_heads + 16
    factor = cfg.ipa.num_blocks + 2 if training else 1
    return FLOAT * pairs * per_pair * factor


def esmfold_bytes(folder: str | os.PathLike, length: int) -> int:
    """Memory of folding one chain of ``length`` residues with the ESMFold model in ``folder``: twice its weight
    files plus the pair state and attention (module docstring). Sizes the config does not give default to those
    of the released ESMFold (pairwise state 128, 40 heads)."""
    folder = Path(folder)
    try:
        cfg: Any = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    esm = cfg.get("esmfold_config")
    trunk = esm.get("trunk") if isinstance(esm, dict) else None
    c_pair = trunk.get("pairwise_state_dim", 128) if isinstance(trunk, dict) else 128
    heads = cfg.get("num_attention_heads", 40)
    c_pair = c_pair if isinstance(c_pair, int) and c_pair > 0 else 128
    heads = heads if isinstance(heads, int) and heads > 0 else 40
    weights = sum(p.stat().st_size for p in folder.iterdir()
                  if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    return 2 * weights + FLOAT * length * length * (8 * c_pair + 2 * heads)


def _size(n: int) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / 1e6:.1f} MB"


def check_fits(need: int, max_memory_gb: float | None, device: str, what: str, fix: str) -> None:
    """Refuse (:class:`InputError`) a request of ``need`` bytes that does not fit the limit (:func:`memory_limit`).

    ``what`` names the request ("generate: 1 chain of 5000 residues"), ``fix`` how to make it smaller (shorter
    chains, a smaller batch); the message also names ``--max-memory-gb``, the option that changes the limit."""
    limit, source = memory_limit(max_memory_gb, device)
    if limit is None or need <= limit:
        return
    raise InputError(f"{what} needs about {_size(need)} of memory, more than {_size(limit)} ({source}); "
                     f"{fix}, or raise the limit with --max-memory-gb (max_memory_gb=...) if more memory is free")


def check_batches_fit(cfg: "ProteinNetworkConfig", batches: list[list[int]], max_memory_gb: float | None,
                      device: str) -> None:
    """Refuse (:class:`InputError`) a generate run whose heaviest batch (chain lengths per batch) would not fit in
    memory (:func:`check_fits`), before any sampling or file."""
    pairs, b, n = pair_load(batches)
    fix = ("lower --residue-budget (fewer chains per batch)" if b > 1 else
           "give shorter chains (--lengths, or shorter --sequence-in / --structure-in inputs)")
    check_fits(network_bytes(cfg, pairs), max_memory_gb, device, f"generate: a batch of {b} chain(s) of {n} residues",
               fix)
