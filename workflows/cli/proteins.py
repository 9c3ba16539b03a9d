"""The protein rows of the command table: ``genmatch generate proteins``."""

from __future__ import annotations

import argparse

from manifolds.discrete.names import SCHEDULER_NAMES
from pipeline.proteins.names import PRECISIONS
from workflows.cli.options import (Command, add_run_options, any_int, int_list, positive_int, printable, probability,
                                 set_threads)

MODE_CHOICES = {"codesign": "codesign", "structure": "structure", "folding": "folding",
                "forward-folding": "folding", "inverse-folding": "inverse_folding"}


def _generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="MultiFlow .ckpt (config.yaml beside it) or genmatch .safetensors (default: "
                   "$GENMATCH_MULTIFLOW_CKPT, else the shipped model pipeline/models/protein_small.safetensors, 50 steps by default)")
    p.add_argument("--lengths", type=int_list, default=[70, 100, 200, 300], help="chain lengths (70,100,200,300)")
    p.add_argument("--per-length", type=positive_int, default=100,
                   help="samples per length, or per input sequence / structure (100)")
    p.add_argument("--rotations", default="flow", choices=["flow", "jump", "superposition"],
                   help="rotation generator: MultiFlow's geodesic flow, the vMF jump (GM section 9) or both")
    p.add_argument("--jump-weight", type=probability, default=0.5,
                   help="weight of the jump in --rotations superposition (0.5; the flow gets the rest)")
    p.add_argument("--sequence", default="purity", choices=["purity", "ko"],
                   help="sequence generator: MultiFlow's purity sampler or the KO mask CTMC")
    p.add_argument("--scheduler", default="kinetic_optimal", choices=SCHEDULER_NAMES,
                   help="kappa_t of --sequence ko (kinetic_optimal)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="time points = network calls (default: the checkpoint's setting; 500 for MultiFlow)")
    p.add_argument("--mode", default="codesign", choices=list(MODE_CHOICES),
                   help="codesign, structure (only), forward-folding (--sequence-in) or inverse-folding "
                   "(--structure-in)")
    p.add_argument("--sequence-in", default=None, metavar="FASTA", help="sequences to fold (forward folding)")
    p.add_argument("--structure-in", default=None, metavar="PDB", help="backbones to design for (inverse folding)")
    p.add_argument("--seed", type=any_int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="network precision: fp32, or bf16 autocast (about 2x faster on CPUs with AVX512-BF16 and "
                   "on GPUs; frames and outputs stay fp32)")
    p.add_argument("--residue-budget", type=positive_int, default=2000,
                   help="padded residues per batch, B x N_max (2000)")
    p.add_argument("--multiflow-exact", action="store_true",
                   help="reproduce MultiFlow's sampler with its quirks (final call time and sequence, overshoot)")
    p.add_argument("--trajectory", action="store_true", help="also write OUT/traj/<id>.pdb (one model per step)")
    add_run_options(p)


def _generate(args: argparse.Namespace) -> int:
    from workflows.proteins import generate_proteins

    set_threads(args.threads)
    s = generate_proteins(args.checkpoint, args.out, lengths=args.lengths, per_length=args.per_length,
                          rotations=args.rotations, jump_weight=args.jump_weight, sequence=args.sequence,
                          scheduler=args.scheduler, steps=args.steps, mode=MODE_CHOICES[args.mode],
                          sequence_in=args.sequence_in, structure_in=args.structure_in, seed=args.seed,
                          device=args.device, precision=args.precision, multiflow_exact=args.multiflow_exact,
                          residue_budget=args.residue_budget, trajectory=args.trajectory, restart=args.restart,
                          progress=not args.quiet)
    print(printable(f"generated {s.n} proteins ({s.mode}) in {s.batches} batches, {s.samples_per_s:.3g} samples/s "
                    f"-> {args.out}"))
    return 0


COMMANDS = [
    Command(("generate", "proteins"), "generate protein backbones + sequences (MultiFlow-compatible network)",
            "Sample proteins on R^3N x SO(3)^N x [21]^N with a MultiFlow-style network: co-design, structure only, "
            "forward or inverse folding; rotations by flow, vMF jump or their superposition; sequence by "
            "MultiFlow's purity sampler or the KO mask CTMC. Writes OUT/pdb/<id>.pdb (N, CA, C, O), "
            "OUT/samples.fasta, OUT/manifest.csv/.json and OUT/run.json; an interrupted run resumes.",
            _generate_args, _generate),
]
