"""The protein rows of the command table: ``genmatch generate proteins``, ``relax proteins``, ``score proteins`` and
``train proteins``.

Each handler builds the verb's config from the options and calls the same :mod:`workflows.proteins` verb as a Python
script would. Nothing heavy is imported here at module level (``genmatch --help`` stays fast): the choices come from
torch-free modules and the handlers import the rest when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator

from manifolds.discrete.names import SCHEDULER_NAMES
from pipeline.proteins.names import MODE_SPELLINGS, MPNN_MODELS, PRECISIONS, ROTATIONS, SEQUENCES
from workflows.cli.options import (Command, UsageError, add_memory_option, add_run_options, add_training_options,
                                   device, finite_float, int_list, nonnegative_float, nonnegative_int, positive_float,
                                   positive_int, printable, probability, unit_open_float)


def _one_line_warning(message: Warning | str, *args: object, **kwargs: object) -> None:
    """``warnings.showwarning`` of a command: a warning (e.g. lengths outside the model's training range) as one
    line on stderr, when it is raised."""
    print(printable(f"genmatch: warning: {message}"), file=sys.stderr)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Within the block, every UserWarning (e.g. "MSE read as MET", lengths outside the training range) is printed
    as one line on stderr, each time it is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _one_line_warning
        yield


# ------------------------------------------------------------------------------------------ generate proteins


def motif_method(text: str) -> str:
    """``--motif-method``: one of :data:`pipeline.proteins.replacement.MOTIF_METHODS`, checked when a command is
    parsed; not argparse ``choices``, which the help would list by importing that module (it imports torch)."""
    from pipeline.proteins.replacement import MOTIF_METHODS

    if text not in MOTIF_METHODS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                         f"{', '.join(map(repr, MOTIF_METHODS))})")
    return text


def _generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "--checkpoint", dest="model", default=None, metavar="PATH",
                   help="a shipped model's name (protein_small), a MultiFlow .ckpt (config.yaml beside it) or a "
                   "genmatch .safetensors (default: $GENMATCH_MULTIFLOW_CKPT, else the shipped "
                   "pipeline/models/protein_small.safetensors, 50 steps by default); --checkpoint is the old, "
                   "deprecated name")
    p.add_argument("--lengths", type=int_list, default=None, help="chain lengths (70,100,200,300)")
    p.add_argument("--per-length", type=positive_int, default=100,
                   help="samples per length, or per input sequence / structure; with --motif or --refine, the "
                   "number of samples (100)")
    p.add_argument("--rotations", default="flow", choices=list(ROTATIONS),
                   help="rotation generator: MultiFlow's geodesic flow, the vMF jump (GM section 9) or both")
    p.add_argument("--jump-weight", type=probability, default=0.5,
                   help="weight of the jump in --rotations superposition (0.5; the flow gets the rest)")
    p.add_argument("--sequence", default="purity", choices=list(SEQUENCES),
                   help="sequence generator: MultiFlow's purity sampler or the KO mask CTMC")
    p.add_argument("--scheduler", default="kinetic_optimal", choices=SCHEDULER_NAMES,
                   help="kappa_t of --sequence ko (kinetic_optimal)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="time points = network calls (default: the model's setting; 500 for MultiFlow)")
    p.add_argument("--mode", default="codesign", choices=list(MODE_SPELLINGS),
                   help="codesign, structure (only), forward-folding (--sequence-in) or inverse-folding "
                   "(--structure-in)")
    p.add_argument("--sequence-in", default=None, metavar="FASTA", help="sequences to fold (forward folding)")
    p.add_argument("--structure-in", default=None, metavar="PDB",
                   help="backbones to design for (inverse folding): a PDB / mmCIF file or a folder of them")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="network precision: fp32, or bf16 autocast (about 2x faster on CPUs with AVX512-BF16 and "
                   "on GPUs; frames and outputs stay fp32)")
    p.add_argument("--residue-budget", type=positive_int, default=2000,
                   help="padded residues per batch, B x N_max (2000)")
    p.add_argument("--multiflow-exact", action="store_true",
                   help="reproduce MultiFlow's sampler with its quirks (final call time and sequence, overshoot)")
    p.add_argument("--trajectory", action="store_true", help="also write OUT/traj/<id>.pdb (one model per step)")
    _design_args(p.add_argument_group("design (docs/conditioning.md, Proteins)"))
    add_memory_option(p)
    add_run_options(p)


def _design_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--motif", default=None, metavar="PDB", help="motif scaffolding: the PDB / mmCIF file holding "
                   "the motif residues that --contig places")
    g.add_argument("--contig", default=None, help="the designed chain in RFdiffusion's syntax, e.g. "
                   "'10-40/A3-22/10-40' (free lengths / motif residues of chain A; ':seq' after a motif segment "
                   "keeps its amino acids); one draw per sample")
    g.add_argument("--length", default=None, metavar="RANGE", help="total length of the --contig chain, e.g. 60-100")
    g.add_argument("--motif-sequence", action="store_true", help="keep the amino acids of every motif residue")
    g.add_argument("--motif-method", type=motif_method, default="replacement", metavar="METHOD",
                   help="how the motif is kept while sampling: replacement (on its path at every step; works with "
                   "any model; default), guided (replacement plus reconstruction guidance through the network: "
                   "any model, about 3x slower), hold (clean frames throughout) or amortised (the network is "
                   "told the motif: needs a model trained with 'genmatch train proteins --motif-prob', i.e. with "
                   "a motif input); docs/conditioning.md")
    g.add_argument("--motif-guidance", type=nonnegative_float, default=None, metavar="GAMMA",
                   help="strength of --motif-method guided, in A^2 (default 16; 0 is replacement; too large and "
                   "the chain blows up)")
    g.add_argument("--fix", default=None, help="fixed amino acids: 'A5=W,A9=H' (residues of the --motif / --refine "
                   "file) or '12=W' (positions of the designed chain, from 1)")
    g.add_argument("--forbid", default=None, help="amino acids no designed residue may take, e.g. C or C,M")
    g.add_argument("--allow", default=None, help="amino acids a residue may take: '12=DE,A7=KR' (keys as --fix)")
    g.add_argument("--refine", default=None, metavar="PDB", help="refinement: a PDB / mmCIF file with one chain, "
                   "noised to --start-time and sampled again (with its sequence)")
    g.add_argument("--start-time", type=unit_open_float, default=None,
                   help="where --refine starts, in (0, 1): near 1 stays close to the chain (0.6 keeps the fold)")


def _conditions(args: argparse.Namespace):  # noqa: ANN202 - a ProteinConditions, or None
    """The design conditions of ``generate proteins`` (None when no design option is given)."""
    from pipeline.proteins.conditions import ProteinConditions

    given = [f"--{k.replace('_', '-')}" for k in ("motif", "contig", "length", "motif_sequence", "fix", "forbid",
                                                   "allow", "refine", "start_time") if getattr(args, k)]
    if args.motif_method != "replacement" and not args.motif:
        raise UsageError("genmatch generate proteins: --motif-method says how a motif is kept; give --motif and "
                         "--contig too")
    if args.motif_guidance is not None and args.motif_method != "guided":
        raise UsageError("genmatch generate proteins: --motif-guidance is the strength of --motif-method guided; "
                         "add --motif-method guided or drop it")
    if not given:
        return None
    if args.lengths is not None and (args.motif or args.refine):
        raise UsageError(f"genmatch generate proteins: --lengths with {'--motif' if args.motif else '--refine'}: "
                         "the lengths come from the contig (--length) or the refined chain; drop --lengths")
    return ProteinConditions(motif=args.motif, contig=args.contig, length=args.length,
                             motif_sequence=args.motif_sequence, motif_method=args.motif_method,
                             motif_guidance=args.motif_guidance, fix=args.fix,
                             forbid=args.forbid or "", allowed=args.allow, refine=args.refine,
                             start_time=args.start_time)


def _generate(args: argparse.Namespace) -> int:
    from workflows import proteins

    lengths = {} if args.lengths is None else {"lengths": tuple(args.lengths)}
    config = proteins.ProteinGenerateConfig(
        model=args.model, **lengths, per_length=args.per_length, rotations=args.rotations,
        jump_weight=args.jump_weight, sequence=args.sequence, scheduler=args.scheduler, steps=args.steps,
        mode=args.mode, sequence_in=args.sequence_in, structure_in=args.structure_in, seed=args.seed,
        device=args.device, precision=args.precision, multiflow_exact=args.multiflow_exact,
        residue_budget=args.residue_budget, trajectory=args.trajectory, max_memory_gb=args.max_memory_gb,
        conditions=_conditions(args))
    with _warnings_as_lines():
        gen = proteins.generate(config, out_dir=args.out, threads=args.threads, restart=args.restart,
                                progress=not args.quiet)
    s = gen.summary
    print(printable(f"generated {s.n} proteins ({s.mode}) in {s.batches} batches, {s.samples_per_s:.3g} samples/s "
                    f"-> {args.out}"))
    return 0


# ------------------------------------------------------------------------------------------ relax proteins


def _ph(text: str) -> float:
    """``--ph``: a number in [0, 14]."""
    value = finite_float(text)
    if not 0.0 <= value <= 14.0:
        raise argparse.ArgumentTypeError(f"expected a pH in [0, 14], got {text!r}")
    return value


def _relax_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of PDB/mmCIF structures (.pdb, .cif, ... optionally .gz) or one file; "
                   "residue names give the sequence (generated samples: N, CA, C, O of the co-designed sequence)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N structure files")
    p.add_argument("--stiffness", type=nonnegative_float, default=10.0,
                   help="harmonic restraints on heavy atoms, kcal/mol/A^2 (10, AlphaFold2; 0: unrestrained)")
    p.add_argument("--tolerance", type=positive_float, default=2.39,
                   help="L-BFGS tolerance, kcal/mol (2.39 = 10 kJ/mol, AlphaFold2)")
    p.add_argument("--max-iterations", type=nonnegative_int, default=0,
                   help="L-BFGS iterations per minimisation (0: no limit, AlphaFold2)")
    p.add_argument("--max-outer-iterations", type=positive_int, default=3,
                   help="minimisations at most, repeated while clashes or bond violations remain (3, AlphaFold2)")
    p.add_argument("--ph", type=_ph, default=7.0, help="pH of the added hydrogens (7)")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes (1)")
    add_run_options(p, threads=False)


def _relax(args: argparse.Namespace) -> int:
    from pipeline.proteins.score.inputs import read_protein_input
    from workflows import proteins

    config = proteins.ProteinRelaxConfig(stiffness=args.stiffness, tolerance=args.tolerance,
                                         max_iterations=args.max_iterations,
                                         max_outer_iterations=args.max_outer_iterations, ph=args.ph,
                                         workers=args.workers)
    with _warnings_as_lines():
        run = proteins.relax(read_protein_input(args.input, limit=args.limit), config, out_dir=args.out,
                             restart=args.restart, progress=not args.quiet)
    s = run.summary
    bad = f" ({s.n_bad_input} unusable inputs, see relax_results.csv)" if s.n_bad_input else ""
    print(printable(f"relaxed {s.n} proteins: {s.relaxed} without violations, {s.violations} with violations left, "
                    f"{s.failed} failed{bad}; backbone RMSD mean {s.mean_backbone_rmsd:.3f} A; heavy-atom clashes "
                    f"{s.clashes_before} -> {s.clashes_after} -> {args.out}"))
    return 0


# ------------------------------------------------------------------------------------------ score proteins


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of PDB/mmCIF backbones (.pdb, .cif, ... optionally .gz) or one file")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N structure files")
    p.add_argument("--esmfold", default=None, metavar="PATH",
                   help="local folder of an ESMFold model (EsmForProteinFolding config.json + weights; default "
                   "$GENMATCH_ESMFOLD). Without one, designability is reported as unavailable and the offline "
                   "MPNN proxies are given. Nothing is downloaded")
    p.add_argument("--fold-recycles", type=positive_int, default=None, help="ESMFold recycles (model default)")
    p.add_argument("--mpnn-model", default="v_48_020", choices=list(MPNN_MODELS),
                   help="ProteinMPNN weights (default v_48_020, the protocol)")
    p.add_argument("--mpnn-temperature", type=positive_float, default=0.1, help="sampling temperature (0.1)")
    p.add_argument("--mpnn-sequences", type=positive_int, default=8, help="sequences per backbone (8)")
    p.add_argument("--seed", type=nonnegative_int, default=38, help="ProteinMPNN seed (38, the protocol)")
    p.add_argument("--scrmsd-threshold", type=positive_float, default=2.0, help="designable below this (2.0 A)")
    p.add_argument("--reference", default="default", help="novelty reference: 'default' (the 3,000 backbones of "
                   "the proteins data set), a folder of PDB/mmCIF files, or 'none'")
    p.add_argument("--reference-limit", type=positive_int, default=None, help="only the first N references")
    p.add_argument("--no-diversity", action="store_true", help="skip the all-vs-all TM-align")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes (1)")
    p.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="dask.distributed scheduler address (tcp://host:port)")
    p.add_argument("--backend", default="processes", choices=["dask", "processes"],
                   help="local pool for --workers > 1: a process pool (default) or a dask LocalCluster")
    p.add_argument("--cache-dir", default=None, help="score cache (default ~/.cache/genmatch)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_memory_option(p)
    add_run_options(p)


def _score(args: argparse.Namespace) -> int:
    from pipeline.proteins.score.report import format_summary
    from workflows import proteins

    mpnn = proteins.MpnnConfig(model=args.mpnn_model, temperature=args.mpnn_temperature,
                               n_sequences=args.mpnn_sequences, seed=args.seed)
    config = proteins.ProteinScoreConfig(
        mpnn=mpnn, esmfold=args.esmfold, fold_recycles=args.fold_recycles, scrmsd_threshold=args.scrmsd_threshold,
        reference=None if args.reference == "none" else args.reference, reference_limit=args.reference_limit,
        diversity=not args.no_diversity, limit=args.limit, workers=args.workers, dask_scheduler=args.dask_scheduler,
        backend=args.backend, cache_dir=False if args.no_cache else args.cache_dir, plots=not args.no_plots,
        max_memory_gb=args.max_memory_gb)
    with _warnings_as_lines():
        scores = proteins.score(args.input, config, out_dir=args.out, threads=args.threads, restart=args.restart,
                                progress=not args.quiet)
    print(format_summary(scores))
    print(printable(f"-> {args.out}"))
    return 0


# ------------------------------------------------------------------------------------------ train proteins


def _optional_int(text: str) -> int | None:
    """A positive integer, or ``none``."""
    return None if text.lower() == "none" else positive_int(text)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="proteins", help="'proteins' (the embedded backbone set; default), an npz "
                   "of its schema, or a folder of PDB / mmCIF files")
    p.add_argument("--network", default="small", choices=["small", "multiflow"],
                   help="network size (default small; ignored with --init, whose config is used)")
    p.add_argument("--init", default=None, metavar="PATH", help="start from these weights: a MultiFlow Lightning "
                   ".ckpt (config.yaml beside it) or a genmatch .safetensors (fine-tuning)")
    p.add_argument("--min-length", type=positive_int, default=60, help="shortest chain used (60)")
    p.add_argument("--max-length", type=_optional_int, default=128, help="longest chain used, or none (128)")
    p.add_argument("--crop", type=_optional_int, default=None,
                   help="cut longer chains to a random contiguous window of this many residues (default none)")
    p.add_argument("--max-residues", type=positive_int, default=2048, help="padded residues per batch (2048)")
    p.add_argument("--max-batch-size", type=positive_int, default=64, help="chains per batch at most (64)")
    p.add_argument("--seq-scheduler", default="linear", choices=SCHEDULER_NAMES,
                   help="kappa_t of the sequence masking path: linear (MultiFlow; default), kinetic_optimal, cubic")
    p.add_argument("--no-batch-ot", action="store_true", help="no minibatch OT of the translation noise")
    p.add_argument("--forward-fold-prob", type=probability, default=0.1, help="share of folding examples (0.1)")
    p.add_argument("--inverse-fold-prob", type=probability, default=0.1,
                   help="share of inverse-folding examples (0.1)")
    p.add_argument("--self-condition-prob", type=probability, default=0.5, help="self-conditioning share (0.5)")
    p.add_argument("--motif-prob", type=probability, default=0.0,
                   help="share of motif examples (random motif masks; the network gains a zero-initialised motif "
                   "input for --motif-method amortised; default 0)")
    p.add_argument("--aux-weight", type=nonnegative_float, default=1.0,
                   help="weight of the backbone-atom + pairwise-distance losses (1; MultiFlow's release: 0)")
    p.add_argument("--val-fraction", type=unit_open_float, default=0.05, help="held-out share, grouped (0.05)")
    p.add_argument("--val-times", type=positive_int, default=2, help="time points per validation chain (2)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N chains in the length range")
    add_training_options(p, lr=5e-4)
    add_memory_option(p)
    add_run_options(p)


def _train(args: argparse.Namespace) -> int:
    from pipeline.common.training import DeviceSettings
    from workflows import proteins

    config = proteins.ProteinTrainConfig(
        dataset=args.dataset, network=args.network, init=args.init, min_length=args.min_length,
        max_length=args.max_length, crop=args.crop, max_residues=args.max_residues,
        max_batch_size=args.max_batch_size, seq_scheduler=args.seq_scheduler, batch_ot=not args.no_batch_ot,
        forward_fold_prob=args.forward_fold_prob, inverse_fold_prob=args.inverse_fold_prob,
        self_condition_prob=args.self_condition_prob, aux_weight=args.aux_weight, motif_prob=args.motif_prob,
        lr=args.lr,
        lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps, max_steps=args.max_steps,
        grad_clip=args.grad_clip, ema_decay=args.ema_decay, val_fraction=args.val_fraction,
        val_every=args.val_every, val_times=args.val_times, limit=args.limit, seed=args.seed)
    hardware = DeviceSettings(accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes)
    res = proteins.train(config, out_dir=args.out, threads=args.threads, restart=args.restart,
                         progress=not args.quiet, hardware=hardware, snapshots=args.snapshots,
                         max_memory_gb=args.max_memory_gb)
    best = res.record.get("best_val_loss") or {}
    if best:
        print(printable(f"trained to step {res.record['training']['step']}: best validation loss "
                        f"{best['value']:.4f} at step {best['step']} -> {res.best_path} (latest: {res.model_path})"))
    return 0


GENERATE_COMMANDS = [
    Command(("generate", "proteins"), "generate protein backbones + sequences (MultiFlow-compatible network)",
            "Sample proteins on R^3N x SO(3)^N x [21]^N with a MultiFlow-style network: co-design, structure only, "
            "forward or inverse folding, motif scaffolding (--motif, --contig), refinement (--refine, "
            "--start-time), fixed / forbidden amino acids (--fix, --forbid, --allow); rotations by flow, vMF jump "
            "or their superposition; sequence by "
            "MultiFlow's purity sampler or the KO mask CTMC. Writes OUT/pdb/<id>.pdb (N, CA, C, O), "
            "OUT/samples.fasta, OUT/manifest.csv/.json and OUT/run.json; an interrupted run resumes. Lengths "
            "outside those the model was trained on are warned about; a batch estimated to need more memory than "
            "is available (--max-memory-gb) is refused before anything is written.",
            _generate_args, _generate),
]
SCORE_COMMANDS = [
    Command(("score", "proteins"), "score protein backbones: designability, diversity, novelty, DSSP, geometry",
            "Score a folder of PDB/mmCIF backbones with the MultiFlow / GM protocol: ProteinMPNN v_48_020 "
            "(T 0.1, 8 sequences, seed 38) + ESMFold from a local folder (--esmfold) -> scRMSD over N, CA, C, "
            "designable < 2 A (without ESMFold: 'designability: unavailable' and offline MPNN proxies); "
            "diversity (TM-align clusters at 0.5 over designable samples); novelty (1 - max TM to the 3,000 "
            "reference backbones, exhaustive); DSSP helix/strand/coil; geometry checks. Writes "
            "OUT/scores.csv/.parquet, OUT/summary.json, OUT/summary.txt, OUT/tm_matrix.npz and PNG plots; an "
            "unreadable file is one failed row; rerun the same command to resume (cached by content hash). The "
            "ESMFold folder (safetensors, or tensors-only torch files), the dask scheduler and the memory folding "
            "needs (--max-memory-gb) are checked before anything is written.",
            _score_args, _score),
]
RELAX_COMMANDS = [
    Command(("relax", "proteins"), "relax proteins all-atom: PDBFixer + restrained Amber minimisation (AlphaFold2)",
            "Relax protein structures with AlphaFold2's protocol: PDBFixer builds the side chains and hydrogens "
            "(pH 7) from the residue names; Amber99SB in vacuum, HBonds constraints, harmonic restraints on heavy "
            "atoms (--stiffness kcal/mol/A^2), L-BFGS to --tolerance kcal/mol, repeated while heavy-atom clashes or "
            "bond violations remain (at most --max-outer-iterations). Writes OUT/relaxed/<id>.pdb (all atoms), "
            "OUT/relax_results.csv/.parquet (status, reason, energy per residue, clashes before/after, backbone "
            "RMSD to the input) and OUT/relax_summary.json; a structure that cannot be built is one failed row; an "
            "interrupted run resumes.", _relax_args, _relax),
]
TRAIN_COMMANDS = [
    Command(("train", "proteins"), "train the protein co-design model with MultiFlow's objective (Lightning)",
            "Train a protein backbone + sequence model: MultiFlow's interpolant (separate structure / sequence "
            "times, 10 % folding and inverse-folding examples, Gaussian translation prior with minibatch OT, "
            "IGSO(3) rotation prior, masking CTMC for the sequence, self-conditioning) and losses (translation and "
            "rotation vector fields, backbone-atom and pairwise-distance losses, sequence cross-entropy); AdamW + "
            "warm-up + cosine, EMA, gradient clipping, length-bucketed batches, grouped validation split. Writes "
            "OUT/model.safetensors and OUT/best.safetensors (EMA weights + record; load_protein_network reads "
            "them) and the resume state OUT/lightning/last.ckpt; rerun the same command to resume (a larger "
            "--max-steps trains longer). --init PATH fine-tunes a MultiFlow or genmatch checkpoint.",
            _train_args, _train),
]
#: every protein row, in the order of the command table
COMMANDS = [*SCORE_COMMANDS, *GENERATE_COMMANDS, *RELAX_COMMANDS, *TRAIN_COMMANDS]
