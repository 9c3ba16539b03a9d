"""The property-predictor rows of the command table: ``genmatch train predictor``."""

from __future__ import annotations

import argparse

from workflows.cli.options import (Command, add_run_options, nonnegative_float, nonnegative_int, positive_float,
                                   positive_int, printable, probability, unit_half_open_float, unit_open_float)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="training data: a data set split such as perov_5:val, or a CDVAE-format CSV "
                   "(e.g. MP-20's train.csv by path)")
    p.add_argument("--property", action="append", required=True, metavar="COLUMN",
                   help="a numeric column of the CSV to predict (repeat for several: --property heat_ref "
                   "--property dir_gap; Perov-5 heat_ref, dir_gap; Carbon-24 energy_per_atom; MP-20 "
                   "formation_energy_per_atom, band_gap, e_above_hull)")
    p.add_argument("--model", default=None, help="the generator the predictor will guide: its noise path is the one "
                   "trained on (embedded perov_5 / carbon_24 or a .safetensors file; default: the embedded model of "
                   "the data set)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimizer steps (2000)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="crystals per step (256)")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="peak learning rate (0.003)")
    p.add_argument("--weight-decay", type=nonnegative_float, default=0.05, help="AdamW weight decay (0.05)")
    p.add_argument("--hidden", type=positive_int, default=64, help="network width (64)")
    p.add_argument("--blocks", type=positive_int, default=3, help="transformer blocks (3)")
    p.add_argument("--heads", type=positive_int, default=4, help="attention heads, must divide --hidden (4)")
    p.add_argument("--dropout", type=unit_half_open_float, default=0.0, help="dropout in the blocks (0)")
    p.add_argument("--min-std", type=positive_float, default=0.1,
                   help="floor of the predicted std, in standard deviations of the training targets (0.1)")
    p.add_argument("--clean-fraction", type=probability, default=0.3,
                   help="share of training draws at t = 1, the clean structure (0.3)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random origin shift + inversion of the training crystals (default: as the generator was "
                   "trained, i.e. on the origins its samples have)")
    p.add_argument("--holdout", type=unit_open_float, default=0.1, help="held-out share of the data (0.1)")
    p.add_argument("--eval-every", type=positive_int, default=250, help="held-out NLL + resume state every N steps")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the split, the initialisation and the batches")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N rows of the data")
    add_run_options(p)


def _train(args: argparse.Namespace) -> int:
    from workflows.crystals import train_predictor

    res = train_predictor(data=args.data, properties=tuple(args.property), model=args.model, steps=args.steps,
                          batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, blocks=args.blocks,
                          heads=args.heads, dropout=args.dropout, min_std=args.min_std, weight_decay=args.weight_decay,
                          clean_fraction=args.clean_fraction, augment=args.augment,
                          holdout=args.holdout, eval_every=args.eval_every, seed=args.seed, limit=args.limit,
                          out_dir=args.out, threads=args.threads, restart=args.restart, progress=not args.quiet)
    held = res.record["heldout"]
    parts = []
    for prop, row in held["properties"].items():
        parts.append(f"{prop} MAE {row['mae'][-1]:.3g} at t = 1, {row['mae'][0]:.3g} at t < 0.2 (predicting the "
                     f"mean: {held['baseline'][prop]['mae']:.3g})")
    print(printable(f"trained a predictor to step {res.record['training']['step']} on {held['n_heldout']} held-out "
                    f"crystals: {'; '.join(parts)} -> {res.model_path}"))
    return 0


COMMANDS = [
    Command(("train", "predictor"), "train a property predictor on noisy crystal tokens (for guidance)",
            "Train a property predictor p(y | x_t, t) for predictor guidance of the crystal sampler (Nisonoff et al. "
            "2024): a small permutation-invariant transformer on the generator's noisy token sequences, a Gaussian "
            "mean and std per property (heteroscedastic NLL). Writes OUT/predictor.safetensors and "
            "OUT/predictor.json (the record: properties, data set and SHA-256, the generator path, held-out MAE / "
            "RMSE / 1- and 2-sigma coverage per noise level) and the resume state OUT/state.pt; rerun the same "
            "command to resume (a larger --steps trains longer).", _train_args, _train),
]
