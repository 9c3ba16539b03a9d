"""The ``genmatch train proteins`` row of the command table (MultiFlow's objective, Lightning)."""

from __future__ import annotations

import argparse

from manifolds.discrete.names import SCHEDULER_NAMES
from workflows.cli.options import (Command, add_run_options, add_training_options, nonnegative_float, positive_int,
                                 probability, set_threads, unit_open_float)


def _optional_int(text: str) -> int | None:
    """A positive integer, or ``none``."""
    return None if text.lower() == "none" else positive_int(text)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="proteins", help="'proteins' (the shared backbone set; default), an npz "
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
    p.add_argument("--aux-weight", type=nonnegative_float, default=1.0,
                   help="weight of the backbone-atom + pairwise-distance losses (1; MultiFlow's release: 0)")
    p.add_argument("--val-fraction", type=unit_open_float, default=0.05, help="held-out share, grouped (0.05)")
    p.add_argument("--val-times", type=positive_int, default=2, help="time points per validation chain (2)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N chains in the length range")
    add_training_options(p, lr=5e-4)
    add_run_options(p)


def _train(args: argparse.Namespace) -> int:
    from pipeline.proteins.train.trainer import ProteinTrainConfig, train_proteins

    cfg = ProteinTrainConfig(
        dataset=args.dataset, network=args.network, init=args.init, min_length=args.min_length,
        max_length=args.max_length, crop=args.crop, max_residues=args.max_residues,
        max_batch_size=args.max_batch_size, seq_scheduler=args.seq_scheduler, batch_ot=not args.no_batch_ot,
        forward_fold_prob=args.forward_fold_prob, inverse_fold_prob=args.inverse_fold_prob,
        self_condition_prob=args.self_condition_prob, aux_weight=args.aux_weight, lr=args.lr,
        lr_schedule=args.lr_schedule, warmup_steps=args.warmup_steps, max_steps=args.max_steps,
        grad_clip=args.grad_clip, ema_decay=args.ema_decay, val_fraction=args.val_fraction,
        val_every=args.val_every, val_times=args.val_times, limit=args.limit, seed=args.seed)
    set_threads(args.threads)
    res = train_proteins(cfg, args.out, devices=args.devices, num_nodes=args.num_nodes,
                         accelerator=args.accelerator, restart=args.restart, progress=not args.quiet,
                         snapshots=args.snapshots)
    best = res.record.get("best_val_loss") or {}
    if best:
        print(f"trained to step {res.record['training']['step']}: best validation loss {best['value']:.4f} at step "
              f"{best['step']} -> {res.best_path} (latest: {res.model_path})")
    return 0


COMMANDS = [
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
