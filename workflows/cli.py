"""The ``genmatch`` command line.

Every subcommand has ``--help``. Usage errors exit 2 with one line on stderr; a failure the user
can fix (missing data, bad file) exits 1 with one line; no tracebacks unless ``GENMATCH_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class UserError(Exception):
    """A failure the user can fix: missing data, unreadable file, unavailable feature (exit 1)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser that reports errors as one line (exit 2), never a usage dump + traceback."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _not_yet(feature: str, issue_hint: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UserError(f"'genmatch {feature}' is not yet available in this version ({issue_hint}); "
                        "see the status table in README.md")

    return run


def _cmd_info(args: argparse.Namespace) -> int:
    from workflows.info import collect_info, format_info

    info = collect_info(count_entries=not args.fast)
    if args.json:
        import json

        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_info(info))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from workflows.demo import run_demo

    if args.max_relax_steps < 0:
        raise UsageError("genmatch demo: --max-relax-steps must be >= 0")
    run_demo(args.out, args.n_generate, steps=args.steps, relax_max_steps=args.max_relax_steps, hull=args.hull,
             reference_limit=args.reference_limit, workers=args.workers, threads=args.threads,
             n_crystals=args.n_crystals, n_proteins=args.n_proteins, restart=args.restart, progress=not args.quiet)
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _cmd_relax_crystals(args: argparse.Namespace) -> int:
    from pipeline.common.io import read_crystal_input
    from workflows.crystals import relax_crystals

    if args.max_steps < 0:
        raise UsageError("genmatch relax crystals: --max-steps must be >= 0")
    _set_threads(args.threads)
    inp = read_crystal_input(args.input, split=args.split, limit=args.limit)
    run = relax_crystals(inp, model=args.model, fmax=args.fmax, max_steps=args.max_steps,
                         batch_size=args.batch_size, relax_cell=not args.fixed_cell, serial=args.serial,
                         out_dir=args.out, resume=not args.restart, progress=not args.quiet)
    s = run.summary
    print(f"relaxed {s['n']} structures: {s['converged']} converged, {s['step_limit']} at the step limit, "
          f"{s['failed']} failed -> {args.out}")
    return EXIT_OK


def _cmd_score_crystals(args: argparse.Namespace) -> int:
    import json

    from pipeline.common.io import read_crystal_input
    from workflows.crystals import score_crystals

    if (args.struc_cutoff is None) != (args.comp_cutoff is None) and args.dataset is None \
            and ":" not in args.reference:
        raise UsageError("genmatch score crystals: give both --struc-cutoff and --comp-cutoff, or --dataset")
    _set_threads(args.threads)
    inp = read_crystal_input(args.input, split=args.split, limit=args.limit)
    ref = read_crystal_input(args.reference, limit=args.reference_limit)
    dataset = args.dataset or (args.reference.split(":")[0] if ":" in args.reference else None)
    if dataset is None and (args.struc_cutoff is None or args.comp_cutoff is None):
        raise UsageError("genmatch score crystals: the reference is not a named data set; give --dataset "
                         "(perov_5, carbon_24, mp_20) or both --struc-cutoff and --comp-cutoff")
    cache_dir = False if args.no_cache else args.cache_dir
    scores = score_crystals(inp, ref, dataset=dataset, hull=args.hull, trusted=args.trust_pickle,
                            hull_reference=args.hull_reference, hull_relax=not args.hull_static,
                            energies=args.energies, training=args.training, out_dir=args.out,
                            plots=not args.no_plots, struc_cutoff=args.struc_cutoff,
                            comp_cutoff=args.comp_cutoff, n_samples=args.n_samples, seed=args.seed,
                            e_hull_threshold=args.e_hull_threshold, workers=args.workers,
                            scheduler=args.scheduler, backend=args.backend, cache_dir=cache_dir,
                            energy_model=args.model, progress=not args.quiet)
    keys = ("struct_valid", "comp_valid", "valid", "cov_recall", "cov_precision", "wdist_density",
            "wdist_num_elems", "stable_rate", "sun_rate")
    print(json.dumps({k: scores.summary[k] for k in keys if k in scores.summary}))
    return EXIT_OK


def _crystal_io_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by the crystal subcommands: input, output, CHGNet model, limits."""
    p.add_argument("input", help="folder of .cif files, a .cif, a CDVAE-format .csv[.xz], or a data set "
                   "split such as perov_5:test")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", default=None, help="split for a data set name given without ':split'")
    p.add_argument("--model", default="0.3.0", choices=["0.3.0", "0.2.0", "r2scan"], help="CHGNet model")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N input structures")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_relax(sub: argparse._SubParsersAction) -> None:
    relax = sub.add_parser("relax", help="relax crystals with CHGNet (batched FIRE)")
    rsub = relax.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    rc = rsub.add_parser("crystals", help="relax crystals with CHGNet: FIRE + cell filter, batched in flight",
                         description="Relax crystals with CHGNet (FIRE, FrechetCellFilter). Writes "
                         "OUT/relaxed/<id>.cif, OUT/relax_results.csv/.parquet (status, energies per atom, "
                         "steps) and OUT/relax_summary.json; an interrupted run resumes.")
    _crystal_io_args(rc)
    rc.add_argument("--fmax", type=_positive_float, default=0.1, help="force threshold, eV/A (default 0.1)")
    rc.add_argument("--max-steps", type=int, default=1500, help="FIRE step limit (default 1500, FlowMM)")
    rc.add_argument("--batch-size", type=_positive_int, default=32, help="structures per forward pass (32)")
    rc.add_argument("--fixed-cell", action="store_true", help="relax positions only")
    rc.add_argument("--serial", action="store_true", help="use chgnet's StructOptimizer one by one (reference)")
    rc.add_argument("--restart", action="store_true", help="ignore the checkpoint in OUT and start over")
    rc.set_defaults(func=_cmd_relax_crystals)
    relax.set_defaults(func=_needs_target(relax))


def _add_score(sub: argparse._SubParsersAction) -> None:
    score = sub.add_parser("score", help="score crystals (validity, coverage, property distances, stability)")
    ssub = score.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    sc = ssub.add_parser("crystals", help="score crystals against a reference set (CDVAE protocol + stability)",
                         description="Score crystals as generated samples against a reference (test) set: "
                         "CDVAE validity, COV-R/COV-P, Wasserstein distances of density and N_el; with --hull, "
                         "E_hull, stability, uniqueness, novelty (--training) and S.U.N. Writes "
                         "OUT/scores.csv/.parquet, OUT/summary.json and PNG plots.")
    _crystal_io_args(sc)
    sc.add_argument("--reference", required=True, help="reference (test) set: data set split, CSV or CIF folder")
    sc.add_argument("--dataset", default=None, choices=["perov_5", "carbon_24", "mp_20"],
                    help="picks the CDVAE coverage cutoffs (default: the reference's data set)")
    sc.add_argument("--struc-cutoff", type=_positive_float, default=None, help="override structure cutoff")
    sc.add_argument("--comp-cutoff", type=_positive_float, default=None, help="override composition cutoff")
    sc.add_argument("--n-samples", type=_positive_int, default=1000, help="valid samples for wdist (1000)")
    sc.add_argument("--seed", type=int, default=0, help="seed of the wdist sample")
    sc.add_argument("--hull", default="none", help="none | default | mp-elements | entries .json[.gz] | "
                    "PatchedPhaseDiagram .pkl[.gz] (needs --trust-pickle)")
    sc.add_argument("--trust-pickle", action="store_true", help="allow unpickling the --hull file (runs code "
                    "from the file: only for files you trust)")
    sc.add_argument("--hull-reference", default=None, help="structures whose CHGNet energies join the MP "
                    "elemental refs in --hull default (e.g. perov_5:val); cached on disk")
    sc.add_argument("--hull-static", action="store_true", help="static CHGNet energies for --hull-reference "
                    "(default: relaxed)")
    sc.add_argument("--energies", default=None, help="relax_results.csv/.parquet with e_final_per_atom by id "
                    "(default: static CHGNet energies of the input)")
    sc.add_argument("--e-hull-threshold", type=float, default=0.0, help="stable if E_hull <= this (0; 0.1)")
    sc.add_argument("--training", default=None, help="training set for novelty / S.U.N.")
    sc.add_argument("--workers", type=_positive_int, default=1, help="local worker processes (1)")
    sc.add_argument("--scheduler", default=None, help="dask.distributed scheduler address (tcp://host:port)")
    sc.add_argument("--backend", default="dask", choices=["dask", "processes"],
                    help="local pool for --workers > 1: dask LocalCluster (default) or a process pool")
    sc.add_argument("--cache-dir", default=None, help="fingerprint/energy cache (default ~/.cache/genmatch)")
    sc.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    sc.add_argument("--reference-limit", type=_positive_int, default=None, help="only the first N reference ones")
    sc.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    sc.set_defaults(func=_cmd_score_crystals)
    score.set_defaults(func=_needs_target(score))


def _cmd_generate_crystals(args: argparse.Namespace) -> int:
    from pipeline.generate.crystals import SamplingConfig, generate_crystals

    _set_threads(args.threads)
    num_atoms = None
    if args.num_atoms is not None:
        try:
            counts = [int(v) for v in args.num_atoms.split(",")]
        except ValueError:
            raise UsageError(f"genmatch generate crystals: --num-atoms takes an integer or a comma-separated "
                             f"list of integers, got {args.num_atoms!r}") from None
        if min(counts) < 1:
            raise UsageError("genmatch generate crystals: --num-atoms must be >= 1")
        if len(counts) == 1:
            num_atoms = counts[0]
        elif len(counts) != args.n:
            raise UsageError(f"genmatch generate crystals: {len(counts)} atom counts for -n {args.n} crystals")
        else:
            num_atoms = counts
    if args.temperature <= 0 or args.corrector < 0:
        raise UsageError("genmatch generate crystals: --temperature must be > 0 and --corrector >= 0")
    config = SamplingConfig(steps=args.steps, temperature=args.temperature, corrector=args.corrector,
                            scheduler=args.scheduler)
    run = generate_crystals(args.model, args.n, args.out, num_atoms=num_atoms, config=config, seed=args.seed,
                            batch_size=args.batch_size, resume=not args.restart, progress=not args.quiet)
    s = run.summary
    reasons = ", ".join(f"{k} {v}" for k, v in s["failures_by_reason"].items()) or "none"
    print(f"generated {s['n']} crystals: {s['decoded']} decoded, {s['decode_failed']} failed to decode "
          f"({reasons}) -> {args.out}")
    return EXIT_OK


def _add_generate(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="generate crystals (KO-DFM) or proteins")
    gsub = gen.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    gc = gsub.add_parser("crystals", help="sample crystals with a KO-DFM model; CIFs + manifest",
                         description="Sample crystals with a discrete flow model (KO-DFM, mask source). Writes "
                         "OUT/cifs/gen_<i>.cif, OUT/manifest.json/.csv (one row per sample; failed decodes "
                         "with their reason) and OUT/run.json; an interrupted run resumes.")
    gc.add_argument("-n", type=_positive_int, default=200, help="number of crystals (default 200)")
    gc.add_argument("--out", required=True, help="output folder")
    gc.add_argument("--model", default="perov_5", help="embedded model (perov_5, carbon_24) or a .safetensors "
                    "file from 'genmatch train crystals' (default perov_5)")
    gc.add_argument("--num-atoms", default=None, help="atom count for all, or a comma-separated list of n "
                    "counts (default: drawn from the training distribution)")
    gc.add_argument("--steps", type=_positive_int, default=250, help="CTMC steps (default 250)")
    gc.add_argument("--temperature", type=_positive_float, default=0.7, help="softmax temperature (0.7)")
    gc.add_argument("--corrector", type=float, default=0.0, help="corrector weight, KO eq. 35 (default 0)")
    gc.add_argument("--scheduler", default=None, choices=["kinetic_optimal", "cubic", "linear"],
                    help="default: the scheduler the model was trained with")
    gc.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    gc.add_argument("--batch-size", type=_positive_int, default=256, help="crystals per batch (256)")
    gc.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    gc.add_argument("--restart", action="store_true", help="discard a previous run in OUT and start over")
    gc.add_argument("--quiet", action="store_true", help="no progress bar")
    gc.set_defaults(func=_cmd_generate_crystals)
    gp = gsub.add_parser("proteins", help="generate protein backbones (not yet available)")
    gp.set_defaults(func=_not_yet("generate proteins", "planned by the protein generation issue"))
    gen.set_defaults(func=_needs_target(gen))


def _cmd_train_crystals(args: argparse.Namespace) -> int:
    from pipeline.train.crystals import TrainConfig, train_crystals

    _set_threads(args.threads)
    network: str | dict = args.network
    if args.dropout is not None:
        from pipeline.networks.crystal_dit import CONFIGS

        network = {**CONFIGS[args.network].to_dict(), "dropout": args.dropout}
    cfg = TrainConfig(dataset=args.dataset, split=args.split, network=network, scheduler=args.scheduler,
                      loss=args.loss, augment=args.augment, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                      max_steps=args.max_steps, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
                      val_fraction=args.val_fraction, val_every=args.val_every, seed=args.seed, limit=args.limit,
                      lr_schedule=args.lr_schedule)
    res = train_crystals(cfg, args.out, devices=args.devices, num_nodes=args.num_nodes,
                         accelerator=args.accelerator, resume=not args.restart, progress=not args.quiet)
    best = res.record.get("best_val_ce") or {}
    if best:
        print(f"trained to step {res.record['training']['step']}: best validation CE {best['value']:.4f} per token "
              f"at step {best['step']} -> {res.best_path} (latest: {res.model_path})")
    return EXIT_OK


def _add_train(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("train", help="train a crystal generator (KO-DFM) or a protein model")
    tsub = tr.add_subparsers(dest="target", metavar="TARGET", parser_class=_Parser)
    tc = tsub.add_parser("crystals", help="train the permutation-invariant DiT with KO-DFM (Lightning)",
                         description="Train a crystal generator: mask-source discrete flow, cross-entropy (KO eq. "
                         "11) or ELBO (KO eq. 37), AdamW + warm-up, EMA, gradient clipping. Writes "
                         "OUT/model.safetensors and OUT/best.safetensors (EMA weights + record) and the resume "
                         "state OUT/lightning/last.ckpt; rerun the same command to resume.")
    tc.add_argument("--dataset", default="perov_5", help="perov_5, carbon_24, mp_20, or a CDVAE-format CSV")
    tc.add_argument("--split", default="val", help="split of a named data set (default val)")
    tc.add_argument("--out", required=True, help="output folder")
    tc.add_argument("--network", default="small", choices=["small", "paper"], help="DiT size (default small)")
    tc.add_argument("--scheduler", default="kinetic_optimal", choices=["kinetic_optimal", "cubic", "linear"],
                    help="kinetic_optimal (KO eq. 33, KO-DFM; default), cubic or linear (DFM)")
    tc.add_argument("--loss", default="ce", choices=["ce", "elbo"], help="cross-entropy or mixture ELBO")
    tc.add_argument("--augment", action="store_true",
                    help="random origin shift + inversion of each training crystal (exact on the token grid)")
    tc.add_argument("--dropout", type=float, default=None, help="dropout in the DiT blocks (default: the preset's)")
    tc.add_argument("--batch-size", type=_positive_int, default=256, help="per device (default 256)")
    tc.add_argument("--lr", type=_positive_float, default=1e-3, help="peak learning rate (1e-3)")
    tc.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    tc.add_argument("--warmup-steps", type=int, default=200, help="linear warm-up steps (200)")
    tc.add_argument("--max-steps", type=_positive_int, default=20000, help="optimizer steps (20000)")
    tc.add_argument("--grad-clip", type=_positive_float, default=1.0, help="gradient norm clip (1.0)")
    tc.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay (0.999)")
    tc.add_argument("--val-fraction", type=float, default=0.05, help="held-out share of the split (0.05)")
    tc.add_argument("--val-every", type=_positive_int, default=500, help="validate + checkpoint every N steps")
    tc.add_argument("--limit", type=_positive_int, default=None, help="only the first N crystals")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--devices", type=_positive_int, default=1, help="processes/devices per node (DDP if > 1)")
    tc.add_argument("--num-nodes", type=_positive_int, default=1, help="nodes (DDP)")
    tc.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    tc.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads per process")
    tc.add_argument("--restart", action="store_true", help="ignore the resume state in OUT and start over")
    tc.add_argument("--quiet", action="store_true", help="no progress bar")
    tc.set_defaults(func=_cmd_train_crystals)
    tp = tsub.add_parser("proteins", help="train a protein model (not yet available)")
    tp.set_defaults(func=_not_yet("train proteins", "planned by the protein generation issue"))
    tr.set_defaults(func=_needs_target(tr))


def _needs_target(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UsageError(f"{p.prog}: say what to work on, e.g. '{p.prog} crystals' (see '{p.prog} --help')")

    return run


def build_parser() -> argparse.ArgumentParser:
    from workflows import __version__

    p = _Parser(prog="genmatch", description="Generator Matching for proteins and crystals: "
                "generate, relax and score.")
    p.add_argument("--version", action="version", version=f"genmatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    info = sub.add_parser("info", help="versions, data directory, devices, available models")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.add_argument("--fast", action="store_true", help="do not count entries of data sets")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser("demo", help="the main job on the embedded defaults (what `make demo` runs)",
                          description="Generate Perov-5 crystals with the shipped model, relax them with CHGNet "
                          "(batched FIRE) and score them against Perov-5 test (CDVAE validity, COV-R/COV-P, "
                          "wdist density / N_el, E_hull). Writes OUT/demo_summary.json, OUT/summary.json, "
                          "OUT/scores.csv/.parquet and PNG plots; OUT/generated and OUT/relaxed hold the stages. "
                          "Rerun the same command to resume.")
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--n-generate", type=_positive_int, default=200,
                      help="Perov-5 crystals to generate with the shipped model (default 200)")
    demo.add_argument("--steps", type=_positive_int, default=250, help="CTMC sampler steps (default 250)")
    demo.add_argument("--max-relax-steps", type=int, default=1500, help="CHGNet FIRE step limit (default 1500)")
    demo.add_argument("--hull", default="default", choices=["default", "mp-elements"],
                      help="E_hull reference: MP elemental refs + CHGNet-relaxed Perov-5 val crystals in the "
                      "samples' chemical systems (default; cached) or the elemental refs only (a lower bound)")
    demo.add_argument("--reference-limit", type=_positive_int, default=None,
                      help="score against only the first N Perov-5 test crystals (default: all)")
    demo.add_argument("--workers", type=_positive_int, default=None,
                      help="fingerprint processes (default: the available CPUs)")
    demo.add_argument("--threads", type=_positive_int, default=1,
                      help="torch threads for sampling and CHGNet (default 1: fastest for 5-atom cells)")
    demo.add_argument("--n-crystals", type=_positive_int, default=200,
                      help="test crystals per data set in the tokeniser round-trip check (default 200)")
    demo.add_argument("--n-proteins", type=_positive_int, default=200, help="protein chains summarised (200)")
    demo.add_argument("--restart", action="store_true", help="discard a previous run in OUT and start over")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    _add_relax(sub)
    _add_score(sub)

    _add_generate(sub)
    _add_train(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    debug = os.environ.get("GENMATCH_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # argparse --help / --version
        return int(exc.code or 0)
    except KeyboardInterrupt:
        print("genmatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, no traceback
        if debug:
            raise
        from structures.data import DataNotFoundError

        kind = "error" if isinstance(exc, (UserError, DataNotFoundError, ValueError, OSError)) else \
            f"internal error ({type(exc).__name__}; rerun with GENMATCH_DEBUG=1 for a traceback)"
        print(f"genmatch: {kind}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
