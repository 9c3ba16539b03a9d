"""Crystal relaxation with CHGNet: a batched in-flight FIRE relaxer, the serial reference and resumable runs.

- :class:`BatchedRelaxer`: many structures advance together; one CHGNet forward pass over the batch
  of graphs per step; each structure keeps its own FIRE state (ASE's FIRE on a FrechetCellFilter,
  so the update rule is exactly the serial one) and leaves the batch when it converges, hits the
  step limit or fails; waiting structures take the free slots (in-flight batching).
- :func:`relax_serial`: ``chgnet.model.StructOptimizer`` one structure at a time (the reference).
- :func:`relax_crystals` with :class:`CrystalRelaxConfig`: a resumable relax run (:mod:`.run`).

The names below load their module on first use (PEP 562), so that :mod:`.model` (the CHGNet versions that
configs and the command line choose from) is importable without torch.
"""

from __future__ import annotations

from manifolds.lazy import lazy_exports


#: public name -> the module that defines it
_WHERE = {
    "BatchedRelaxer": "pipeline.crystals.relax.batched",
    "CHGNET_MODELS": "pipeline.crystals.relax.model",
    "CrystalRelaxConfig": "pipeline.crystals.relax.run",
    "RelaxResult": "pipeline.crystals.relax.result",
    "RelaxStatus": "pipeline.crystals.relax.result",
    "RelaxSummary": "pipeline.crystals.relax.result",
    "load_chgnet": "pipeline.crystals.relax.model",
    "relax_crystals": "pipeline.crystals.relax.run",
    "relax_serial": "pipeline.crystals.relax.serial",
    "summarize": "pipeline.crystals.relax.result",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
