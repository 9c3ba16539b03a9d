"""The ``genmatch score proteins`` row of the command table."""

from __future__ import annotations

import argparse

from workflows.cli.options import Command, add_run_options, any_int, positive_float, positive_int, set_threads


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="folder of PDB/mmCIF backbones (.pdb, .cif, ... optionally .gz) or one file")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N structure files")
    p.add_argument("--esmfold", default=None, metavar="PATH",
                   help="local folder of an ESMFold model (EsmForProteinFolding config.json + weights; default "
                   "$GENMATCH_ESMFOLD). Without one, designability is reported as unavailable and the offline "
                   "MPNN proxies are given. Nothing is downloaded")
    p.add_argument("--fold-recycles", type=positive_int, default=None, help="ESMFold recycles (model default)")
    p.add_argument("--mpnn-model", default="v_48_020", choices=["v_48_002", "v_48_010", "v_48_020", "v_48_030"],
                   help="ProteinMPNN weights (default v_48_020, the protocol)")
    p.add_argument("--mpnn-temperature", type=positive_float, default=0.1, help="sampling temperature (0.1)")
    p.add_argument("--mpnn-sequences", type=positive_int, default=8, help="sequences per backbone (8)")
    p.add_argument("--seed", type=any_int, default=38, help="ProteinMPNN seed (38, the protocol)")
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
    add_run_options(p)


def _run(args: argparse.Namespace) -> int:
    from pipeline.common.parallel import ComputeConfig
    from pipeline.proteins.score import MpnnConfig, ProteinScoreConfig
    from workflows.proteins_score import score_proteins

    mpnn = MpnnConfig(model=args.mpnn_model, temperature=args.mpnn_temperature, n_sequences=args.mpnn_sequences,
                      seed=args.seed)
    config = ProteinScoreConfig(mpnn=mpnn, esmfold=args.esmfold, fold_recycles=args.fold_recycles,
                                scrmsd_threshold=args.scrmsd_threshold,
                                reference=None if args.reference == "none" else args.reference,
                                reference_limit=args.reference_limit, diversity=not args.no_diversity)
    compute = ComputeConfig(workers=args.workers, dask_scheduler=args.dask_scheduler, backend=args.backend,
                            cache_dir=False if args.no_cache else args.cache_dir, progress=not args.quiet)
    config.validate()
    set_threads(args.threads)
    from workflows.proteins_score import as_protein_input

    inp = as_protein_input(args.input, limit=args.limit)
    scores = score_proteins(inp, config=config, compute=compute, out_dir=args.out, restart=args.restart,
                            plots=not args.no_plots, threads=(args.threads or 1) if args.workers > 1 else None)
    from pipeline.proteins.score.report import format_summary

    print(format_summary(scores))
    print(f"-> {args.out}")
    return 0


COMMANDS = [
    Command(("score", "proteins"), "score protein backbones: designability, diversity, novelty, DSSP, geometry",
            "Score a folder of PDB/mmCIF backbones with the MultiFlow / GM protocol: ProteinMPNN v_48_020 "
            "(T 0.1, 8 sequences, seed 38) + ESMFold from a local folder (--esmfold) -> scRMSD over N, CA, C, "
            "designable < 2 A (without ESMFold: 'designability: unavailable' and offline MPNN proxies); "
            "diversity (TM-align clusters at 0.5 over designable samples); novelty (1 - max TM to the 3,000 "
            "reference backbones, exhaustive); DSSP helix/strand/coil; geometry checks. Writes "
            "OUT/scores.csv/.parquet, OUT/summary.json, OUT/summary.txt, OUT/tm_matrix.npz and PNG plots; an "
            "unreadable file is one failed row; rerun the same command to resume (cached by content hash).",
            _args, _run),
]
