"""What a protein generation run asks of its model, checked once the model is loaded and before any run folder or
file is opened (:func:`pipeline.proteins.generate.generate_proteins`).

* :func:`check_motif_input`: the amortised motif method (``ProteinConditions.motif_method == "amortised"``; issue 24,
  FrameFlow's motif scaffolding, Yim et al. 2024) conditions the network on the motif mask mu (``s0 += W_s mu_i``,
  ``z0 += W_z mu_i mu_j``, :mod:`pipeline.proteins.network.model`), so the network needs those weights: a model
  trained with motif masks (``genmatch train proteins --motif-prob P``, ``ProteinNetworkConfig.motif_input``).
  Without them the run is refused (:class:`~structures.errors.InputError`); replacement works with any model.
* :func:`warn_untrained_lengths`: one :class:`UserWarning` for lengths outside those the model was trained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from structures.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.proteins.conditions import ProteinConditions
    from pipeline.proteins.network.checkpoint import LoadedProteinModel
    from pipeline.proteins.network.config import ProteinNetworkConfig

__all__ = ["check_motif_input", "require_motif_input", "warn_untrained_lengths"]


def check_motif_input(conditions: ProteinConditions | None, model: LoadedProteinModel) -> None:
    """InputError when ``conditions`` ask for the amortised motif method and ``model``'s network has no motif input
    (module docstring); nothing otherwise."""
    if conditions is not None and conditions.motif is not None and conditions.motif_method == "amortised":
        require_motif_input(model.net.cfg, "ProteinConditions.motif_method (--motif-method)", f"model {model.source}")


def require_motif_input(cfg: ProteinNetworkConfig, argument: str, model: str = "this model") -> None:
    """InputError, naming ``argument`` and ``model``, when the network config ``cfg`` has no motif input: the one
    check behind :func:`check_motif_input` (a run) and :func:`pipeline.proteins.sampler.sample_proteins` (a
    batch)."""
    if not cfg.motif_input:
        raise InputError(f"{argument} 'amortised' needs a model trained with motif masks ('genmatch train proteins "
                         f"--motif-prob P', which adds a motif input); {model} has no motif input: give such a "
                         "model (--model), or use motif_method 'replacement', which works with any model")


def warn_untrained_lengths(lengths: Sequence[int], model: LoadedProteinModel) -> None:
    """One :class:`UserWarning` naming the lengths outside the range ``model`` was trained on (if it is known)."""
    trained = model.trained_lengths()
    if trained is None:
        return
    lo, hi = trained
    out = sorted({n for n in lengths if n < lo or (hi is not None and n > hi)})
    if out:
        span = f"{lo} or more" if hi is None else f"{lo}" if hi == lo else f"{lo}-{hi}"
        which = f"lengths {', '.join(map(str, out))} are" if len(out) > 1 else f"length {out[0]} is"
        warnings.warn(f"{which} outside the {span} residues the model was trained on ({model.source}); expect "
                      "poorer samples there", UserWarning, stacklevel=4)  # the caller of workflows.proteins.generate
