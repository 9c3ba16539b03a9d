"""Python entry point for protein generation (the ``genmatch generate proteins`` stage).

    from workflows.proteins import generate_proteins
    summary = generate_proteins("multiflow/last.ckpt", "runs/proteins", lengths=(70, 100), per_length=10,
                                rotations="jump", steps=500)      # PDBs + FASTA + manifest, resumable

``checkpoint``: a MultiFlow Lightning ``.ckpt`` (with its ``config.yaml`` beside it) or a genmatch protein
safetensors file; without one, ``$GENMATCH_MULTIFLOW_CKPT``, else the shipped ``pipeline/models/protein_small.safetensors``
(a small, undertrained model; its record sets the default of 50 steps: see pipeline/models/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from pipeline.proteins.sampler import SamplerConfig
from pipeline.proteins.generate import (ProteinGenerationConfig, ProteinGenerationSummary, ProteinTarget,
                                        generate_proteins as _generate_run)
from pipeline.proteins.flow import ProteinFlowConfig, RotationConfig, SequenceConfig
from structures.errors import InputError

__all__ = ["generate_proteins", "read_fasta", "read_structures"]

DEFAULT_STEPS = 500  # MultiFlow's inference num_timesteps


def read_fasta(path: str | os.PathLike) -> list[ProteinTarget]:
    """Sequences of a FASTA file (one-letter, AF2 alphabet; ``X`` is refused): targets named by their header."""
    from structures.proteins.residue_constants import RESTYPES

    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the FASTA file ({type(exc).__name__}); give a readable text file") from None
    out: list[ProteinTarget] = []
    name, parts = None, []
    for line in text.splitlines() + [">"]:
        line = line.strip()
        if line.startswith(">"):
            if name is not None:
                seq = "".join(parts).upper()
                bad = sorted(set(seq) - set(RESTYPES))
                if not seq or bad:
                    raise InputError(f"{p}: sequence {name!r} is empty or has letters outside {RESTYPES} "
                                     f"({''.join(bad)[:10]})")
                out.append(ProteinTarget(name, seq))
            name, parts = (line[1:].split() or [f"seq{len(out)}"])[0], []
        elif line:
            if name is None:
                raise InputError(f"{p}: not a FASTA file (no '>' header before the first sequence)")
            parts.append(line)
    if not out:
        raise InputError(f"{p}: no sequences in the FASTA file")
    return out


def read_structures(path: str | os.PathLike) -> list[ProteinTarget]:
    """Every protein chain of a PDB / mmCIF file (complete N, CA, C needed): targets ``<file>_<chain>``."""
    from structures.proteins.io import StructureFileError, read_chains

    try:
        chains = read_chains(path)
    except (StructureFileError, OSError) as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    out = []
    for c in chains:
        if not c.backbone_complete.all():
            raise InputError(f"{path}: chain {c.chain_id} misses N, CA or C atoms at {int((~c.backbone_complete).sum())} "
                             "residues; give a complete backbone")
        out.append(ProteinTarget(c.name, c.sequence.replace("X", "A"), c.coords.astype("float64")))
    return out


def generate_proteins(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike, *,
                      lengths: Sequence[int] = (70, 100, 200, 300), per_length: int = 100,
                      rotations: str = "flow", jump_weight: float = 0.5, sequence: str = "purity",
                      scheduler: str = "kinetic_optimal", steps: int | None = None, mode: str = "codesign",
                      sequence_in: str | os.PathLike | None = None, structure_in: str | os.PathLike | None = None,
                      seed: int = 0, device: str = "cpu", precision: str = "fp32", multiflow_exact: bool = False,
                      residue_budget: int = 2000,
                      trajectory: bool = False, restart: bool = False, progress: bool = True) -> ProteinGenerationSummary:
    """Generate proteins into ``out_dir`` (see :mod:`pipeline.proteins.generate`); ``steps`` None: the
    checkpoint's inference setting (500, MultiFlow's); ``precision`` "bf16": network calls under bfloat16
    autocast (SamplerConfig.precision)."""
    import torch

    from pipeline.proteins.network.checkpoint import (MULTIFLOW_CKPT_ENV, SHIPPED_PROTEIN_MODEL,
                                                      default_protein_checkpoint, load_protein_network,
                                                      read_protein_checkpoint)

    if checkpoint is None:
        checkpoint = default_protein_checkpoint()
        if checkpoint is None:
            raise InputError(f"no protein model: the shipped {SHIPPED_PROTEIN_MODEL} is missing; give --checkpoint "
                             f"(a MultiFlow .ckpt with its config.yaml, or a genmatch .safetensors) or set "
                             f"{MULTIFLOW_CKPT_ENV}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} is not available on this machine; use --device cpu")
    targets = None
    if sequence_in is not None and structure_in is not None:
        raise InputError("give --sequence-in (folding) or --structure-in (inverse folding), not both")
    if sequence_in is not None:
        targets = read_fasta(sequence_in)
    if structure_in is not None:
        targets = read_structures(structure_in)
    info = read_protein_checkpoint(checkpoint).info
    sampling = info.get("sampling") if isinstance(info.get("sampling"), dict) else {}
    steps = steps or int(sampling.get("steps", DEFAULT_STEPS))
    flow = ProteinFlowConfig(rotations=RotationConfig(kind=rotations, jump_weight=jump_weight),  # type: ignore[arg-type]
                             sequence=SequenceConfig(kind=sequence, scheduler=scheduler),  # type: ignore[arg-type]
                             multiflow_exact=multiflow_exact)
    sampler = SamplerConfig(steps=steps, flow=flow, mode=mode, precision=precision)  # type: ignore[arg-type]
    try:
        sampler.validate()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    config = ProteinGenerationConfig(tuple(int(v) for v in lengths), per_length, seed, residue_budget, trajectory)
    config.validate()
    net = load_protein_network(checkpoint, device=device)
    ckpt = Path(checkpoint)
    inputs: list[object] = [ckpt]
    if ckpt.with_name("config.yaml").is_file() and ckpt.suffix == ".ckpt":
        inputs.append(ckpt.with_name("config.yaml"))
    return _generate_run(net, out_dir, sampler, config, targets=targets, inputs=inputs, restart=restart,
                         progress=progress)
