"""The main job on the embedded defaults (``make demo`` / ``genmatch demo``): the crystal chain and the protein
chain in one run folder and one summary. See :mod:`workflows.demo.run` for the stages and outputs.

    from workflows.demo import DemoConfig, run_demo
    summary = run_demo(DemoConfig(n_generate=50), "runs/demo")

Names load their module on first use (PEP 562): ``genmatch demo --help`` reads :mod:`.config` without torch.
"""

from __future__ import annotations

from manifolds.lazy import lazy_exports


_WHERE = {
    "DemoConfig": "workflows.demo.config", "GENERATE_BATCH": "workflows.demo.config", "HULLS": "workflows.demo.config",
    "PROTEIN_ROTATIONS": "workflows.demo.config", "DemoScores": "workflows.demo.crystals",
    "DemoProteins": "workflows.demo.proteins", "DemoSummary": "workflows.demo.run",
    "format_summary": "workflows.demo.run", "run_demo": "workflows.demo.run",
}
__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
