"""The crystal rows of the command table: generate, relax, score and train crystals."""

from __future__ import annotations

import argparse
import json

from pipeline.crystals.names import CHGNET_MODELS, COORD_PATHS, DEFAULT_CHGNET, LOSSES, SCHEDULER_NAMES
from workflows.cli.options import (Command, UsageError, add_run_options, add_training_options, finite_float,
                                 int_list, nonnegative_float, nonnegative_int, positive_float, positive_int, printable,
                                 unit_half_open_float, unit_open_float)

CHGNET_HELP = f"CHGNet version for energies and forces (default {DEFAULT_CHGNET})"


def _crystal_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of .cif files, a .cif, a CDVAE-format .csv[.xz], or a data set "
                   "split such as perov_5:test")
    p.add_argument("--split", default=None, help="split for a data set name given without ':split'")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N input structures")
    p.add_argument("--chgnet", default=DEFAULT_CHGNET, choices=CHGNET_MODELS, help=CHGNET_HELP)
    add_run_options(p)


# ---------------------------------------------------------------------------------------------- relax

def _relax_args(p: argparse.ArgumentParser) -> None:
    _crystal_input(p)
    p.add_argument("--fmax", type=positive_float, default=0.1, help="force threshold, eV/A (default 0.1)")
    p.add_argument("--max-steps", type=nonnegative_int, default=1500, help="FIRE step limit (default 1500, FlowMM)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="structures per forward pass (32)")
    p.add_argument("--fixed-cell", action="store_true", help="relax positions only")
    p.add_argument("--serial", action="store_true", help="use chgnet's StructOptimizer one by one (reference)")


def _input(args: argparse.Namespace):  # noqa: ANN202 - a pipeline.common.io.CrystalInput
    from pipeline.common.io import read_crystal_input

    return read_crystal_input(args.input, split=args.split, limit=args.limit)


def _relax(args: argparse.Namespace) -> int:
    from workflows.crystals import CrystalRelaxConfig, relax

    config = CrystalRelaxConfig(chgnet=args.chgnet, fmax=args.fmax, max_steps=args.max_steps,
                                batch_size=args.batch_size, relax_cell=not args.fixed_cell, serial=args.serial)
    run = relax(_input(args), config, out_dir=args.out, threads=args.threads, restart=args.restart,
                progress=not args.quiet)
    s = run.summary
    bad = f" ({s.n_bad_input} unusable inputs, see relax_results.csv)" if s.n_bad_input else ""
    print(printable(f"relaxed {s.n} structures: {s.converged} converged, {s.step_limit} at the step limit, "
                    f"{s.failed} failed{bad} -> {args.out}"))
    return 0


# ---------------------------------------------------------------------------------------------- score

def _score_args(p: argparse.ArgumentParser) -> None:
    _crystal_input(p)
    p.add_argument("--reference", required=True, help="reference (test) set: data set split, CSV or CIF folder")
    p.add_argument("--dataset", default=None, choices=["perov_5", "carbon_24", "mp_20"],
                   help="picks the CDVAE coverage cutoffs (default: the reference's data set)")
    p.add_argument("--struc-cutoff", type=positive_float, default=None, help="override structure cutoff")
    p.add_argument("--comp-cutoff", type=positive_float, default=None, help="override composition cutoff")
    p.add_argument("--n-samples", type=positive_int, default=1000, help="valid samples for wdist (1000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the wdist sample")
    p.add_argument("--hull", default="none", help="none | default | mp-elements | entries .json[.gz] | "
                   "PatchedPhaseDiagram .pkl[.gz] (needs --trust-pickle)")
    p.add_argument("--trust-pickle", action="store_true", help="allow unpickling the --hull file (runs code "
                   "from the file: only for files you trust)")
    p.add_argument("--hull-reference", default=None, help="structures whose CHGNet energies join the MP "
                   "elemental refs in --hull default (e.g. perov_5:val); cached on disk")
    p.add_argument("--hull-static", action="store_true", help="static CHGNet energies for --hull-reference "
                   "(default: relaxed)")
    p.add_argument("--energies", default=None, help="relax_results.csv/.parquet with e_final_per_atom by id "
                   "(default: static CHGNet energies of the input)")
    p.add_argument("--e-hull-threshold", type=finite_float, default=0.0, help="stable if E_hull <= this (0; 0.1)")
    p.add_argument("--training", default=None, help="training set for novelty / S.U.N.")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes (1)")
    p.add_argument("--dask-scheduler", default=None, help="dask.distributed scheduler address (tcp://host:port)")
    p.add_argument("--backend", default="dask", choices=["dask", "processes"],
                   help="local pool for --workers > 1: dask LocalCluster (default) or a process pool")
    p.add_argument("--cache-dir", default=None, help="fingerprint/energy cache (default ~/.cache/genmatch)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--reference-limit", type=positive_int, default=None, help="only the first N reference ones")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def _score(args: argparse.Namespace) -> int:
    from workflows.crystals import CrystalScoreConfig, score

    dataset = args.dataset or (args.reference.split(":")[0] if ":" in args.reference else None)
    if dataset is None and (args.struc_cutoff is None or args.comp_cutoff is None):
        from pipeline.common.io import read_crystal_input

        read_crystal_input(args.reference, limit=args.reference_limit)  # a missing or broken file says so first
        raise UsageError("genmatch score crystals: the reference is not a named data set; give --dataset "
                         "(perov_5, carbon_24, mp_20) or both --struc-cutoff and --comp-cutoff")
    config = CrystalScoreConfig(
        reference=args.reference, reference_limit=args.reference_limit, dataset=dataset,
        struc_cutoff=args.struc_cutoff, comp_cutoff=args.comp_cutoff, n_samples=args.n_samples, seed=args.seed,
        e_hull_threshold=args.e_hull_threshold, chgnet=args.chgnet, hull=args.hull, trust_pickle=args.trust_pickle,
        hull_reference=args.hull_reference, hull_relax=not args.hull_static, energies=args.energies,
        training=args.training, workers=args.workers, dask_scheduler=args.dask_scheduler, backend=args.backend,
        cache_dir=False if args.no_cache else args.cache_dir, plots=not args.no_plots)
    scores = score(_input(args), config, out_dir=args.out, threads=args.threads, restart=args.restart,
                   progress=not args.quiet)
    keys = ("n_input", "n_unusable", "struct_valid", "comp_valid", "valid", "cov_recall", "cov_precision",
            "wdist_density", "wdist_num_elems", "stable_rate", "hull_coverage", "sun_rate")
    s = scores.summary.to_dict()  # the flat layout of summary.json: stability fields beside the others
    print(json.dumps({k: s[k] for k in keys if k in s}))
    return 0


# ------------------------------------------------------------------------------------------- generate

def _generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", type=positive_int, default=200, help="number of crystals (default 200)")
    p.add_argument("--model", default="perov_5", help="embedded model (perov_5, carbon_24) or a .safetensors "
                   "file from 'genmatch train crystals' (default perov_5)")
    p.add_argument("--num-atoms", type=int_list, default=None, help="atom count for all, or a comma-separated "
                   "list of n counts (default: drawn from the training distribution)")
    p.add_argument("--steps", type=positive_int, default=250, help="CTMC steps (default 250)")
    p.add_argument("--temperature", type=positive_float, default=0.7, help="softmax temperature (0.7)")
    p.add_argument("--corrector", type=nonnegative_float, default=0.0, help="corrector weight, KO eq. 35 (0)")
    p.add_argument("--scheduler", default=None, choices=SCHEDULER_NAMES,
                   help="kappa_t of the sampler (default: the scheduler the model was trained with)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="crystals per batch (256)")
    _condition_args(p.add_argument_group("conditions (docs/conditioning.md; -n crystals per condition)"))
    add_run_options(p)


def _site_list(text: str) -> list[int]:
    """``0,1,2``: site indices (>= 0) of the seed structure."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated site indices >= 0, got {text!r}") from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated site indices >= 0, got {text!r}")
    return values


def _target(text: str):  # noqa: ANN202 - a pipeline.crystals.targets.PropertyTarget
    from pipeline.crystals.targets import parse_target
    from structures.errors import InputError

    try:
        return parse_target(text, "")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def _condition_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--formula", default=None, help="structure prediction: this composition (e.g. BaTiO3; a "
                   "reduced formula takes --z formula units, or counts the model knows)")
    g.add_argument("--z", type=positive_int, default=None, help="formula units of --formula / --formulas")
    g.add_argument("--formulas", default=None, metavar="FILE", help="one formula per line (# comments and blank "
                   "lines ignored); -n crystals for each")
    g.add_argument("--elements", default=None, help="only these elements, e.g. Ba,Sr,Ti,Zr,O")
    g.add_argument("--require", default=None, help="elements each crystal must contain, e.g. Ti (guidance)")
    g.add_argument("--seed-structure", default=None, metavar="CIF", help="a seed structure (CIF file) for "
                   "--start-time, --fix-lattice, --fix-sites")
    g.add_argument("--start-time", type=unit_open_float, default=None, help="refine the seed: noise it to this "
                   "time in (0, 1) and sample to 1 (near 1: close to the seed)")
    g.add_argument("--fix-lattice", action="store_true", help="keep the seed's lattice")
    g.add_argument("--fix-sites", type=_site_list, default=None, help="keep these sites of the seed (0-based, "
                   "in the CIF's order), e.g. 0,1,2")
    g.add_argument("--target", type=_target, action="append", default=None, help="property target, e.g. "
                   "'heat_ref<=-1.5' or 'dir_gap in [1,3]' (repeatable: all at once)")
    g.add_argument("--guidance", type=positive_float, default=None, help="guidance strength (1)")
    g.add_argument("--predictor", default=None, help="property predictor (.safetensors of 'genmatch train "
                   "predictor') for --target")
    g.add_argument("--guidance-method", default=None, choices=["first_order", "exact"],
                   help="predictor guidance: one gradient per step (first_order, default) or every neighbour")


def _conditions(args: argparse.Namespace):  # noqa: ANN202 - a list of CrystalConditions, or None
    """The conditions of ``generate crystals`` (None when no condition option is given)."""
    from pipeline.crystals.conditions import CrystalConditions
    from pipeline.crystals.formulas import read_formulas

    if args.formula is not None and args.formulas is not None:
        raise UsageError("genmatch generate crystals: give --formula or --formulas, not both")
    if (args.guidance is not None or args.guidance_method is not None) and not (args.target or args.require):
        raise UsageError("genmatch generate crystals: --guidance and --guidance-method need --target or --require")
    fields = dict(z=args.z, elements=args.elements, required=args.require or (), seed=args.seed_structure,
                  start_time=args.start_time, fix_lattice=args.fix_lattice, fix_sites=tuple(args.fix_sites or ()),
                  targets=tuple(args.target or ()), guidance=args.guidance or 1.0, predictor=args.predictor,
                  guidance_method=args.guidance_method or "first_order")
    if args.formulas is not None:
        return [CrystalConditions(formula=f, **fields) for f in read_formulas(args.formulas, "--formulas")]
    if args.formula is None and not any((args.z, args.elements, args.require, args.seed_structure, args.start_time,
                                         args.fix_lattice, args.fix_sites, args.target, args.predictor)):
        return None
    return [CrystalConditions(formula=args.formula, **fields)]


def _generate(args: argparse.Namespace) -> int:
    from workflows.crystals import CrystalGenerateConfig, generate

    counts = args.num_atoms
    num_atoms: int | list[int] | None = None
    if counts is not None:
        if len(counts) == 1:
            num_atoms = counts[0]
        elif len(counts) != args.n:
            raise UsageError(f"genmatch generate crystals: {len(counts)} atom counts for -n {args.n} crystals")
        else:
            num_atoms = counts
    config = CrystalGenerateConfig(n=args.n, model=args.model, num_atoms=num_atoms, steps=args.steps,
                                   temperature=args.temperature, corrector=args.corrector, scheduler=args.scheduler,
                                   seed=args.seed, batch_size=args.batch_size, conditions=_conditions(args))
    run = generate(config, out_dir=args.out, threads=args.threads, restart=args.restart, progress=not args.quiet)
    s = run.summary
    reasons = ", ".join(f"{k} {v}" for k, v in s.failures_by_reason.items()) or "none"
    unwritable = f"; {s.not_writable} decoded but not writable as CIF" if s.not_writable else ""
    print(printable(f"generated {s.n} crystals: {s.decoded} decoded, {s.decode_failed} failed to decode "
                    f"({reasons}){unwritable} -> {args.out}"))
    return 0


# ---------------------------------------------------------------------------------------------- train

def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="perov_5", help="perov_5, carbon_24, mp_20, or a CDVAE-format CSV")
    p.add_argument("--split", default="val", help="split of a named data set (default val)")
    p.add_argument("--network", default="small", choices=["small", "paper"], help="DiT size (default small)")
    p.add_argument("--scheduler", default="kinetic_optimal", choices=SCHEDULER_NAMES,
                   help="kappa_t: kinetic_optimal (KO eq. 33, KO-DFM; default), cubic or linear (DFM)")
    p.add_argument("--loss", default="ce", choices=LOSSES, help="cross-entropy or mixture ELBO")
    p.add_argument("--augment", action="store_true",
                   help="random origin shift + inversion of each training crystal (exact on the token grid)")
    p.add_argument("--dropout", type=unit_half_open_float, default=None,
                   help="dropout in the DiT blocks (default: the preset's)")
    p.add_argument("--coord-path", default="mask", choices=COORD_PATHS,
                   help="noise path of the fractional coordinates: the mask path like every token (KO-DFM, default) "
                        "or the metric-induced path KO eq. 27 on the ring of grid values (uniform source)")
    p.add_argument("--coord-beta", type=positive_float, nargs=2, default=(5.0, 1.0), metavar=("C", "A"),
                   help="beta_t = C (t / (1 - t))^A of the metric coordinate path (default 5 1)")
    p.add_argument("--hidden", type=positive_int, default=None, help="DiT width (default: the preset's)")
    p.add_argument("--blocks", type=positive_int, default=None, help="DiT blocks (default: the preset's)")
    p.add_argument("--heads", type=positive_int, default=None,
                   help="attention heads, must divide --hidden (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int, default=256, help="per device (default 256)")
    p.add_argument("--val-fraction", type=unit_open_float, default=0.05, help="held-out share of the split (0.05)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N crystals")
    add_training_options(p, lr=1e-3)
    add_run_options(p)


def _train(args: argparse.Namespace) -> int:
    from pipeline.common.training import DeviceSettings
    from workflows.crystals import CrystalTrainConfig, train

    network: str | dict = args.network
    overrides = {k: getattr(args, k) for k in ("dropout", "hidden", "blocks", "heads") if getattr(args, k) is not None}
    if overrides:
        from pipeline.crystals.network import CONFIGS

        network = {**CONFIGS[args.network].to_dict(), **overrides}  # checked by CrystalTrainConfig
    cfg = CrystalTrainConfig(dataset=args.dataset, split=args.split, network=network, scheduler=args.scheduler,
                             loss=args.loss, augment=args.augment, coord_path=args.coord_path,
                             coord_beta=tuple(args.coord_beta), batch_size=args.batch_size, lr=args.lr,
                             warmup_steps=args.warmup_steps, max_steps=args.max_steps, grad_clip=args.grad_clip,
                             ema_decay=args.ema_decay, val_fraction=args.val_fraction, val_every=args.val_every,
                             seed=args.seed, limit=args.limit, lr_schedule=args.lr_schedule)
    res = train(cfg, out_dir=args.out, threads=args.threads, restart=args.restart, progress=not args.quiet,
                hardware=DeviceSettings(args.accelerator, args.devices, args.num_nodes), snapshots=args.snapshots)
    best = res.record.get("best_val_ce") or {}
    if best:
        print(printable(f"trained to step {res.record['training']['step']}: best validation CE {best['value']:.4f} "
                        f"per token at step {best['step']} -> {res.best_path} (latest: {res.model_path})"))
    return 0


COMMANDS = [
    Command(("generate", "crystals"), "sample crystals with a KO-DFM model; CIFs + manifest",
            "Sample crystals with a discrete flow model (KO-DFM, mask source). Writes OUT/cifs/gen_<i>.cif, "
            "OUT/manifest.json/.csv (one row per sample; failed decodes and samples a CIF cannot hold, with "
            "their reason) and OUT/run.json; an interrupted run resumes.", _generate_args, _generate),
    Command(("relax", "crystals"), "relax crystals with CHGNet: FIRE + cell filter, batched in flight",
            "Relax crystals with CHGNet (FIRE, FrechetCellFilter). Writes OUT/relaxed/<id>.cif, "
            "OUT/relax_results.csv/.parquet (status, reason, energies per atom, steps) and "
            "OUT/relax_summary.json; an unusable input is one failed row; an interrupted run resumes.",
            _relax_args, _relax),
    Command(("score", "crystals"), "score crystals against a reference set (CDVAE protocol + stability)",
            "Score crystals as generated samples against a reference (test) set: CDVAE validity, COV-R/COV-P, "
            "Wasserstein distances of density and N_el; with --hull, E_hull, stability (with the hull's "
            "coverage), uniqueness, novelty (--training) and S.U.N. Writes OUT/scores.csv/.parquet, "
            "OUT/summary.json and PNG plots.", _score_args, _score),
    Command(("train", "crystals"), "train the permutation-invariant DiT with KO-DFM (Lightning)",
            "Train a crystal generator: mask-source discrete flow, cross-entropy (KO eq. 11) or ELBO (KO eq. "
            "37), AdamW + warm-up, EMA, gradient clipping. Writes OUT/model.safetensors and "
            "OUT/best.safetensors (EMA weights + record) and the resume state OUT/lightning/last.ckpt; rerun "
            "the same command to resume (a larger --max-steps trains longer).", _train_args, _train),
]
