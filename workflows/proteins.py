"""The protein verbs of the Python API: :func:`generate`, :func:`relax`, :func:`score` and :func:`train` (the CLI
calls these too).

    from workflows import proteins
    gen = proteins.generate(lengths=[60], per_length=10, steps=50)
    scores = proteins.score(gen)
    print(scores.table[["id", "length", "radius_of_gyration"]])

Every verb takes a config (:class:`ProteinGenerateConfig`, :class:`ProteinScoreConfig`, :class:`ProteinTrainConfig`)
and/or its fields by keyword (with a config too, they override it), ``threads`` (torch threads for this call; None:
leave as is), ``out_dir`` (a resumable run folder, see docs/runs.md; None: results in memory only, not for
``train``), ``restart`` and ``progress``. Results: :class:`GeneratedProteins` (chains, sequences, ids),
:class:`ScoredProteins` (one table row per input, ``id`` = the caller's id) and :class:`TrainedModel`. Bad arguments
raise :class:`~structures.errors.InputError` naming the argument. The work is done in :mod:`pipeline.proteins`.

Generation samples the product space R^3N x SO(3)^N x [21]^N (GM Prop. 4) with a MultiFlow-compatible network
(see :mod:`pipeline.proteins.sampler`); folding takes sequences (``sequence_in``: a sequence, a list or dict of
them, or a FASTA file), inverse folding takes backbones (``structure_in``: BackboneChains, data set ProteinChains,
a previous result, or a PDB / mmCIF file or folder). Design conditions (``conditions=``, a
:class:`ProteinConditions` or a dict of its fields) scaffold a motif, refine a chain, fix or forbid amino acids:

    gen = proteins.generate(conditions=proteins.ProteinConditions(
        motif="motif.pdb", contig="10-40/A3-22/10-40", length="60-100", motif_sequence=True, forbid="C"),
        per_length=8, steps=50)

``motif_method``: "replacement" (default, any model), "guided" (replacement plus reconstruction guidance, any model;
``motif_guidance`` its strength), "hold", or "amortised" (FrameFlow's motif scaffolding, Yim et al. 2024: the network
is told the motif; a model trained with ``train(..., motif_prob=0.5)``, ``model=`` its file).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pipeline.proteins.conditions import ProteinConditions
from pipeline.proteins.generate import GeneratedProteins, ProteinGenerateConfig, generate_proteins
from pipeline.proteins.relax.config import ProteinRelaxConfig
from pipeline.proteins.score.config import MpnnConfig, ProteinScoreConfig
from pipeline.proteins.score.run import score_backbones
from pipeline.proteins.score.summary import ScoredProteins
from structures.validate import check_bool
from workflows.verbs import check_run_args, make_config, torch_threads

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.common.training import DeviceSettings, TrainedModel
    from pipeline.proteins.relax.result import RelaxedProteins
    from pipeline.proteins.train.trainer import ProteinTrainConfig

__all__ = ["DeviceSettings", "GeneratedProteins", "MpnnConfig", "ProteinConditions", "ProteinGenerateConfig",
           "ProteinRelaxConfig", "ProteinScoreConfig", "ProteinTrainConfig", "RelaxedProteins", "ScoredProteins",
           "TrainedModel", "generate", "relax", "score", "train"]



def __getattr__(name: str) -> Any:
    """``ProteinTrainConfig``, ``TrainedModel`` and ``RelaxedProteins`` load on first use (the trainer imports
    Lightning)."""
    if name == "ProteinTrainConfig":
        from pipeline.proteins.train.trainer import ProteinTrainConfig

        return ProteinTrainConfig
    if name == "RelaxedProteins":
        from pipeline.proteins.relax.result import RelaxedProteins

        return RelaxedProteins
    if name in ("TrainedModel", "DeviceSettings"):
        from pipeline.common import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def generate(config: ProteinGenerateConfig | None = None, *, out_dir: str | os.PathLike | None = None,
             threads: int | None = None, restart: bool = False, progress: bool = True,
             **fields: Any) -> GeneratedProteins:
    """Generate proteins (:class:`ProteinGenerateConfig`; e.g. ``generate(lengths=[60], per_length=10)``).

    Without ``out_dir`` the chains and sequences stay in memory; with it they are also written to a resumable run
    folder (``pdb/<id>.pdb``, ``samples.fasta``, ``manifest.csv/.json``, ``run.json``) and returned as written.
    Lengths outside those the model was trained on give one :class:`UserWarning`. ``conditions``: a
    :class:`ProteinConditions` (motif scaffolding, refinement, fixed / forbidden amino acids; module docstring);
    its ``motif_method="amortised"`` needs a model trained with motif masks (``train(motif_prob=...)``, a motif
    input), else :class:`~structures.errors.InputError` naming ``ProteinConditions.motif_method``, before any file.
    """
    config = make_config(ProteinGenerateConfig, config, fields, "generate")
    check_run_args("generate", out_dir, restart, progress)
    with torch_threads("generate", threads):
        return generate_proteins(config, out_dir=out_dir, restart=restart, progress=progress)


def relax(backbones: Any, config: ProteinRelaxConfig | None = None, *, out_dir: str | os.PathLike | None = None,
          threads: int | None = None, restart: bool = False, progress: bool = True,
          **fields: Any) -> "RelaxedProteins":
    """Relax proteins all-atom with AlphaFold2's protocol (:class:`ProteinRelaxConfig`; e.g. ``relax(gen,
    workers=4)``): PDBFixer builds side chains and hydrogens from the sequence, restrained Amber99SB L-BFGS
    minimisation (heavy atoms, 10 kcal/mol/A^2; tolerance 2.39 kcal/mol), repeated while violations remain.

    ``backbones``: as :func:`score` takes them. The result has one ``table`` row per input, in input order
    (status relaxed / violations / failed with its reason; energy per residue, clashes and bond violations before
    and after, backbone RMSD to the input) and the all-atom PDB text of each model. With ``out_dir``:
    ``relaxed/<id>.pdb``, ``relax_results.csv/.parquet`` and ``relax_summary.json``; an interrupted run resumes.
    ``threads`` is accepted for symmetry with the other verbs (OpenMM runs one thread per worker).
    """
    from pipeline.proteins.relax.run import relax_proteins

    config = make_config(ProteinRelaxConfig, config, fields, "relax")
    check_run_args("relax", out_dir, restart, progress)
    with torch_threads("relax", threads):
        return relax_proteins(backbones, config, out_dir, restart=restart, progress=progress)


def score(backbones: Any, config: ProteinScoreConfig | None = None, *, out_dir: str | os.PathLike | None = None,
          threads: int | None = None, restart: bool = False, progress: bool = True, **fields: Any) -> ScoredProteins:
    """Score backbones: geometry, DSSP, ProteinMPNN designs, designability with ESMFold (when a local model is
    given), diversity and novelty (:class:`ProteinScoreConfig`; the protocol: docs/protocols.md).

    ``backbones``: a :class:`GeneratedProteins`, a list of BackboneChain / data set ProteinChain, a dict id ->
    chain, or a PDB / mmCIF file or folder. The table has one row per input, its ``id`` the caller's id (file stems
    for files); an unreadable file is a ``failed`` row. With ``out_dir``: scores.csv/.parquet, summary.json/.txt,
    tm_matrix.npz and plots in a resumable run folder. ``threads`` also sets each worker's threads (workers > 1).
    """
    config = make_config(ProteinScoreConfig, config, fields, "score")
    check_run_args("score", out_dir, restart, progress)
    with torch_threads("score", threads):
        return score_backbones(backbones, config, out_dir=out_dir, restart=restart, progress=progress,
                               threads=threads)


def train(config: "ProteinTrainConfig | None" = None, *, out_dir: str | os.PathLike, threads: int | None = None,
          restart: bool = False, progress: bool = True, hardware: "DeviceSettings | None" = None,
          snapshots: bool = False, max_memory_gb: float | None = None, **fields: Any) -> "TrainedModel":
    """Train the protein co-design model with MultiFlow's objective (:class:`ProteinTrainConfig`) in the run folder
    ``out_dir`` (required; a rerun resumes, a larger ``max_steps`` trains longer). ``hardware``: accelerator,
    devices and nodes (:class:`~pipeline.common.training.DeviceSettings`; default one CPU process);
    ``snapshots``: also keep every validated model; ``max_memory_gb``: the memory a training step may need (None:
    what is available now), a run estimated to need more is refused before it starts."""
    from pipeline.proteins.train.trainer import ProteinTrainConfig, train_proteins

    cfg = make_config(ProteinTrainConfig, config, fields, "train")
    check_run_args("train", out_dir, restart, progress, required=True)
    with torch_threads("train", threads):
        return train_proteins(cfg, out_dir, hardware=hardware, restart=restart, progress=progress,
                              snapshots=check_bool("train(snapshots=...)", snapshots), max_memory_gb=max_memory_gb)
