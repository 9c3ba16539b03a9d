"""genmatch workflows: the command line (:mod:`workflows.cli`) and the Python API for scripts and batch runs.

One import gives every entry point, config and result::

    from workflows import crystals, proteins            # the verbs: generate, relax, score, train
    from workflows import CrystalGenerateConfig, ProteinGenerateConfig, InputError

    gen = crystals.generate(n=50, model="perov_5")
    scores = crystals.score(crystals.relax(gen, max_steps=300), reference="perov_5:test")

Every verb takes a config dataclass (validated once, when it is made) and/or its fields by keyword, ``threads``,
an optional ``out_dir`` (a resumable run folder; without it the results stay in memory), and returns a typed
result. Bad arguments raise :class:`InputError` (a ``ValueError``) naming the argument. Names load on first use
(PEP 562), so ``import workflows`` and ``genmatch --help`` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from structures.version import genmatch_version

__version__ = genmatch_version()

_CRYSTALS = ("CrystalConditions", "CrystalGenerateConfig", "CrystalRelaxConfig", "CrystalScoreConfig",
             "CrystalTrainConfig", "GeneratedCrystals", "RelaxedCrystals", "ScoredCrystals", "PredictorTrainConfig",
             "TrainedPredictor")
_PROTEINS = ("ProteinGenerateConfig", "ProteinScoreConfig", "ProteinTrainConfig", "GeneratedProteins",
             "ScoredProteins")
#: public name -> the module that defines (or re-exports) it
_WHERE: dict[str, str] = {
    **{name: "workflows.crystals" for name in _CRYSTALS},
    **{name: "workflows.proteins" for name in _PROTEINS},
    "TrainedModel": "pipeline.common.training", "DeviceSettings": "pipeline.common.training",
    "InputError": "structures.errors",
    "DataNotFoundError": "structures.data",
    "DemoConfig": "workflows.demo", "run_demo": "workflows.demo",
}
_MODULES = ("crystals", "proteins", "design", "demo", "cli")
__all__ = sorted([*_WHERE, *_MODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        module = importlib.import_module(f"workflows.{name}")
        globals()[name] = module
        return module
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
