"""Names that configs, model records and the command line choose from; importable without torch."""

from __future__ import annotations

from typing import Literal, get_args

#: A mixture scheduler chosen by name (training config, model record, sampler option, command line).
SchedulerName = Literal["kinetic_optimal", "cubic", "linear"]
#: Every scheduler name, the default first: the one list that configs, record checks and the CLI use.
SCHEDULER_NAMES: tuple[SchedulerName, ...] = get_args(SchedulerName)
