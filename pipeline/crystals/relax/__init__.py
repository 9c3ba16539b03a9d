"""Crystal relaxation with CHGNet: a batched in-flight FIRE relaxer and the serial reference.

- :class:`BatchedRelaxer`: many structures advance together; one CHGNet forward pass over the batch
  of graphs per step; each structure keeps its own FIRE state (ASE's FIRE on a FrechetCellFilter,
  so the update rule is exactly the serial one) and leaves the batch when it converges, hits the
  step limit or fails; waiting structures take the free slots (in-flight batching).
- :func:`relax_serial`: ``chgnet.model.StructOptimizer`` one structure at a time (the reference).
"""

from pipeline.crystals.relax.batched import BatchedRelaxer
from pipeline.crystals.relax.model import load_chgnet
from pipeline.crystals.relax.result import RelaxResult, RelaxStatus, RelaxSummary, summarize
from pipeline.crystals.relax.serial import relax_serial

__all__ = ["BatchedRelaxer", "RelaxResult", "RelaxStatus", "RelaxSummary", "load_chgnet", "relax_serial", "summarize"]
