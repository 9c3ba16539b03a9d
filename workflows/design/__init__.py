"""Design campaigns: one TOML spec runs generate -> relax -> score -> filter / deduplicate / rank -> export for
crystals or proteins, each stage a resumable run folder keyed by its settings and its inputs (docs/design.md).

    from workflows import design
    spec = design.load_spec("campaign.toml")       # validated; InputError naming the key and its line
    print(design.format_plan(spec, design.plan(spec, "runs/campaign")))
    result = design.run(spec, "runs/campaign")       # reruns resume; a changed stage reruns it and those after

Modules: :mod:`~workflows.design.spec` (the spec), :mod:`~workflows.design.expressions` (safe filter expressions),
:mod:`~workflows.design.plan` (keys, folders, reuse), :mod:`~workflows.design.select` (filter, rank, Pareto fronts,
top K), :mod:`~workflows.design.dedupe`, :mod:`~workflows.design.execute` (the runner), :mod:`~workflows.design.distributed` (shards on a dask cluster).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workflows.design.expressions import Expression, parse_expression
from workflows.design.plan import StagePlan, format_plan, plan
from workflows.design.spec import CampaignSpec, Stage, load_spec, parse_spec

if TYPE_CHECKING:  # pragma: no cover
    from workflows.design.execute import CampaignResult

__all__ = ["CampaignSpec", "Expression", "Stage", "StagePlan", "format_plan", "load_spec", "parse_expression",
           "parse_spec", "plan", "run"]


def run(spec: "CampaignSpec | str | os.PathLike", campaign_dir: str | os.PathLike, *, threads: int | None = None,
        progress: bool = True, workers: int = 1, dask_scheduler: str | None = None) -> "CampaignResult":
    """Run or resume the campaign ``spec`` (a :class:`CampaignSpec` or the path of its TOML file) in
    ``campaign_dir`` (:func:`workflows.design.execute.run_campaign`): serially in this process, or with the
    per-item work of generate, relax and score on the dask.distributed cluster at ``dask_scheduler``
    ("tcp://host:8786"), or for ``workers`` > 1 on a local cluster of that many processes; the files are the
    same either way."""
    from workflows.design.execute import run_campaign

    if not isinstance(spec, CampaignSpec):
        spec = load_spec(Path(spec))
    return run_campaign(spec, campaign_dir, threads=threads, progress=progress, workers=workers,
                        dask_scheduler=dask_scheduler)
