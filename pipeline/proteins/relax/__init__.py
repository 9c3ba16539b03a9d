"""All-atom relaxation of proteins with OpenMM + PDBFixer, AlphaFold2's protocol (Jumper et al. 2021, suppl. 1.8.6).

- :func:`relax_chain` (:mod:`.amber`): PDBFixer builds the side chains and hydrogens of a backbone from its
  sequence; restrained Amber99SB L-BFGS minimisation, repeated while violations remain.
- :mod:`.violations`: the heavy-atom clash and bond-violation test (AlphaFold2's), and the scorer's backbone clashes.
- :func:`relax_proteins` with :class:`ProteinRelaxConfig`: a resumable relax run over processes (:mod:`.run`).

The names below load their module on first use (PEP 562), so that :mod:`.config` is importable without OpenMM.
"""

from __future__ import annotations

from manifolds.lazy import lazy_exports


#: public name -> the module that defines it
_WHERE = {
    "ProteinRelaxConfig": "pipeline.proteins.relax.config",
    "ProteinRelaxResult": "pipeline.proteins.relax.result",
    "ProteinRelaxStatus": "pipeline.proteins.relax.result",
    "ProteinRelaxSummary": "pipeline.proteins.relax.result",
    "RelaxedProteins": "pipeline.proteins.relax.result",
    "find_violations": "pipeline.proteins.relax.violations",
    "relax_chain": "pipeline.proteins.relax.amber",
    "relax_proteins": "pipeline.proteins.relax.run",
    "summarize": "pipeline.proteins.relax.result",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
