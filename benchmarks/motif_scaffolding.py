"""Motif scaffolding with the shipped protein model (issue 24, item 6): 20 motifs, methods ``replacement``, ``hold``,
``guided`` (replacement plus reconstruction guidance, :mod:`pipeline.proteins.motif_guidance`) and ``amortised``
(:mod:`pipeline.proteins.replacement`) against unconditional samples of the same model at the same lengths.
``--model`` (default: the shipped protein_small) samples replacement, hold, guided and the unconditional baseline;
``amortised`` (FrameFlow's motif scaffolding, Yim et al. 2024: the network is told the motif) needs a model trained
with motif masks (``genmatch train proteins --motif-prob P``, a motif input): ``--amortised-model PATH``, else
``--model`` when it has one (the shipped protein_small does); otherwise the method is skipped and the JSON says so
(``skipped``).

Motifs. Cut from chains of the embedded backbone set (``structures.data.load_proteins``) that the shipped
``protein_small`` never saw: its record (pipeline/models/protein_small.json, ``dataset``) says it trained on chains
of ``length_range`` 60-128 residues, uncropped; the motifs come from chains longer than that range whose PDB entry
has no chain inside it (so no other chain of the same entry was trained on either, neither in its train nor its val
split), with standard amino acids only and no CA-CA gap above 4.2 A. ``--seed`` picks 20 distinct chains and cuts
from each one motif: contiguous (contig ``5-60/A<s>-<e>/5-60``) or discontiguous (two segments of at least 5
residues, 5-40 residues apart in the source chain: contig ``5-40/A<s1>-<e1>/5-30/A<s2>-<e2>/5-40``), of 10-19 or
20-30 residues in all, five motifs per kind and size bin; every contig has the total length range 60-120. Each
source chain is written to a PDB in a temporary folder (residues numbered 1..L, chain A) and read through
:class:`~pipeline.proteins.conditions.ProteinConditions`, as a user's file is.

Per method, ``--n`` co-designed samples per motif (``--steps`` time points, the default sampler otherwise, the
motif's sequence designed) and, as the baseline, ``--n`` unconditional samples per motif at the lengths the contig
drew (the same draws, same steps), scored on the same positions. Per sample:

* motif RMSD: Kabsch over the motif's backbone atoms N, CA, C (and over CA alone); success below 1 A;
* junction continuity: CA-CA distance of every pair (motif residue, free residue) adjacent in the scaffold; a
  sample is continuous when every such distance is 3.80 +- 0.25 A;
* clashes: CA pairs closer than 3 A between residues at least 2 apart (as ``pipeline.proteins.score.geometry``),
  and separately those between a motif residue and a free one; CA-CA outliers and chain breaks as that module
  defines them;
* with ``--mpnn``: ProteinMPNN (v_48_020, T 0.1, 8 designs, seed 38) log-likelihood of the co-designed sequence and
  mean log-likelihood of its own designs; with ``--esmfold PATH``: designability (best of 8 MPNN designs folded by
  ESMFold, scRMSD < 2 A), else the JSON says it was skipped.

The goals (issue 24): motif RMSD < 1 A and continuity at every junction each in >= 90 % of samples, motif-scaffold
clashes and CA-CA outliers per sample no more than the unconditional samples'. Rows are split by motif size too
(10-19 and 20-30 residues). A per-method table goes to stderr, one JSON object is the last line of stdout.

Usage: python benchmarks/motif_scaffolding.py [--n 8] [--steps 50] [--seed 0] [--motifs 20]
       [--methods replacement,hold,guided,amortised] [--model PATH] [--amortised-model PATH] [--mpnn] [--esmfold PATH]
       [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL_RECORD = Path(__file__).resolve().parents[1] / "pipeline" / "models" / "protein_small.json"
N_MOTIFS = 20
MOTIF_SIZE = (10, 30)
SCAFFOLD_LENGTH = (60, 120)
METHODS = ("replacement", "hold", "guided", "amortised")
NO_AMORTISED_MODEL = ("skipped: --model has no motif input and no --amortised-model PATH was given (a model "
                      "trained with 'genmatch train proteins --motif-prob', which has a motif input)")
SIZE_BINS = ((10, 19), (20, 30))


@dataclass(frozen=True)
class MotifProblem:
    """One motif: residues ``segments`` (1-based, inclusive) of chain ``chain_index`` of the backbone set."""

    name: str
    chain_index: int
    segments: tuple[tuple[int, int], ...]
    contig: str
    length: tuple[int, int] = SCAFFOLD_LENGTH

    @property
    def size(self) -> int:
        return sum(e - s + 1 for s, e in self.segments)

    @property
    def kind(self) -> str:
        return "contiguous" if len(self.segments) == 1 else "discontiguous"


# ------------------------------------------------------------------------------------------ motif selection


def trained_length_range(record: Path = MODEL_RECORD) -> tuple[int, int]:
    """The chain lengths the shipped model trained on (its record's ``dataset.length_range``; uncropped)."""
    data = json.loads(record.read_text())["dataset"]
    if data.get("crop") is not None:
        raise RuntimeError(f"{record}: the model trained on crops; chains longer than its range are not unseen")
    lo, hi = data["length_range"]
    return int(lo), int(hi)


def source_chains(ds: Any) -> np.ndarray:
    """Indices of chains longer than the trained range whose PDB entry has no chain in it, with standard amino
    acids only and no CA-CA gap above 4.2 A (module docstring)."""
    lo, hi = trained_length_range()
    lengths = np.asarray(ds.lengths)
    trained_entries = set(np.asarray(ds.pdb_id)[(lengths >= lo) & (lengths <= hi)].tolist())
    out = []
    for i in np.flatnonzero(lengths > hi):
        if str(ds.pdb_id[i]) in trained_entries:
            continue
        c = ds[int(i)]
        ca = c.coords[:, 1]
        if set(c.sequence) <= set("ACDEFGHIKLMNPQRSTVWY") and np.linalg.norm(np.diff(ca, axis=0), axis=-1).max() <= 4.2:
            out.append(int(i))
    return np.asarray(out, dtype=np.int64)


def select_motifs(seed: int = 0, n: int = N_MOTIFS, ds: Any = None) -> list[MotifProblem]:
    """``n`` motifs from distinct unseen chains: contiguous (even k) and discontiguous (odd k), 10-19 residues
    (k mod 4 in 0, 1) and 20-30 (k mod 4 in 2, 3), so each kind and size bin holds a quarter; same seed, same
    motifs."""
    from structures.data import load_proteins

    ds = load_proteins() if ds is None else ds
    rng = np.random.default_rng([seed, 6])
    chains = rng.choice(source_chains(ds), size=n, replace=False)
    problems = []
    for k, ci in enumerate(chains):
        lo, hi = SIZE_BINS[(k // 2) % 2]
        L, size = int(ds.lengths[ci]), int(rng.integers(lo, hi + 1))
        if k % 2 == 0:
            s = int(rng.integers(1, L - size + 2))
            segs = ((s, s + size - 1),)
            contig = f"5-60/A{s}-{s + size - 1}/5-60"
        else:
            a, gap = int(rng.integers(5, size - 4)), int(rng.integers(5, 41))
            s1 = int(rng.integers(1, L - size - gap + 2))
            s2 = s1 + a + gap
            segs = ((s1, s1 + a - 1), (s2, s2 + size - a - 1))
            contig = f"5-40/A{s1}-{s1 + a - 1}/5-30/A{s2}-{s2 + size - a - 1}/5-40"
        name = f"m{k:02d}_{ds.pdb_id[ci]}_{ds.chain_id[ci]}"
        problems.append(MotifProblem(name, int(ci), segs, contig))
    return problems


def write_source(ds: Any, problem: MotifProblem, folder: Path) -> Path:
    """The motif's source chain as a PDB (chain A, residues 1..L)."""
    from structures.proteins.io import BackboneChain, write_structure

    c = ds[problem.chain_index]
    path = folder / f"{problem.name}.pdb"
    write_structure(path, BackboneChain.from_coords(c.coords, c.sequence, res_ids=np.arange(1, len(c) + 1),
                                                    name=problem.name))
    return path


from motif_metrics import (GOAL_SHARE, SUCCESS_RMSD, ca_clashes, continuous, goals,  # noqa: E402,F401
                           junction_distances, motif_rmsd, sample_metrics, summarise)


# ------------------------------------------------------------------------------------------ the run


def mpnn_scores(coords: np.ndarray, sequence: str) -> dict[str, float]:
    from pipeline.proteins.score.mpnn import design

    d = design(coords, sequence)
    return {"mpnn_codesign_ll": float(d.native_log_likelihood), "mpnn_design_ll": float(np.mean(d.log_likelihoods))}


def run_motif(problem: MotifProblem, pdb: Path, args: argparse.Namespace) -> tuple[dict[str, list], list, Any]:
    """Sample rows per method, the motif placements (shared by the methods) and the motif."""
    from pipeline.proteins.conditions import ProteinConditions, plan_inputs
    from structures.proteins.contig import parse_contig
    from structures.proteins.motif import read_motif
    from workflows import proteins

    rows, placements, motif = {}, None, None
    for method in args.methods:
        cond = ProteinConditions(motif=pdb, contig=problem.contig, length=problem.length, motif_method=method)
        motif = read_motif(pdb, parse_contig(problem.contig, problem.length))
        placements = plan_inputs((), args.n, args.seed, None, cond)[1].placements
        model = args.amortised_model if method == "amortised" else args.model
        out = proteins.generate(conditions=cond, model=model, per_length=args.n, steps=args.steps, seed=args.seed,
                                progress=False)
        by_id = dict(zip(out.ids, zip(out.chains, out.sequences)))
        rows[method] = []
        for i, p in enumerate(placements):
            chain, seq = by_id[f"motif_{i:04d}"]
            x = np.asarray(chain.coords if chain.coords.ndim == 3 else chain.coords[0])
            assert len(x) == len(p), "sample and contig draw differ in length"
            row = sample_metrics(x, p.motif_mask, motif.coords[p.motif_index[p.motif_mask]])
            if args.mpnn:
                row.update(mpnn_scores(x, seq))
            rows[method].append(row | {"motif": problem.name, "chain": chain, "sequence": seq})
    return rows, list(placements), motif


def unconditional(jobs: list[tuple[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One unconditional sample per (motif name, placement), of the placement's length, scored on its mask."""
    from workflows import proteins

    by_length: dict[int, list[tuple[str, Any]]] = defaultdict(list)
    for name, p in jobs:
        by_length[len(p)].append((name, p))
    groups: dict[int, list[int]] = defaultdict(list)  # count -> lengths
    for L, items in by_length.items():
        groups[len(items)].append(L)
    rows = []
    for count, lengths in sorted(groups.items()):
        out = proteins.generate(lengths=tuple(sorted(lengths)), per_length=count, steps=args.steps, seed=args.seed,
                                model=args.model, progress=False)
        seen: dict[int, int] = defaultdict(int)
        for chain, seq in zip(out.chains, out.sequences):
            x = np.asarray(chain.coords if chain.coords.ndim == 3 else chain.coords[0])
            name, p = by_length[len(x)][seen[len(x)]]
            seen[len(x)] += 1
            row = sample_metrics(x, p.motif_mask, None)
            if args.mpnn:
                row.update(mpnn_scores(x, seq))
            rows.append(row | {"motif": name, "chain": chain, "sequence": seq})
    return rows


def designability(rows: list[dict[str, Any]], esmfold: str) -> float | None:
    from workflows import proteins

    res = proteins.score([r["chain"] for r in rows], esmfold=esmfold, reference=None, diversity=False, plots=False,
                         cache_dir=False, threads=1, progress=False)
    return res.summary.designable_fraction


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Arguments; a bad one exits 2 (argparse) before anything runs or is written."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="samples per motif and method")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--motifs", type=int, default=N_MOTIFS, help=f"run the first N of the {N_MOTIFS} motifs")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--model", default=None, help="model of replacement, hold, guided and the unconditional "
                    "baseline (a shipped name or a file; default: the shipped protein_small)")
    ap.add_argument("--amortised-model", default=None, metavar="PATH",
                    help="model of method amortised: trained with 'genmatch train proteins --motif-prob' (a motif "
                    "input); without it amortised is skipped")
    ap.add_argument("--mpnn", action="store_true", help="ProteinMPNN log-likelihoods (slower)")
    ap.add_argument("--esmfold", default=None, help="local ESMFold folder: also designability")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    for k, lo in (("n", 1), ("steps", 2), ("motifs", 1), ("threads", 1), ("seed", 0)):
        if getattr(args, k) < lo:
            ap.error(f"--{k} must be at least {lo}, got {getattr(args, k)}")
    if args.motifs > N_MOTIFS:
        ap.error(f"--motifs: there are {N_MOTIFS} motifs, got {args.motifs}")
    args.methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in args.methods if m not in METHODS]
    if bad or not args.methods:
        ap.error(f"--methods: {bad[0] if bad else 'none'} is not one of {', '.join(METHODS)}")
    check_models(ap, args)
    if args.esmfold is not None:
        from pipeline.proteins.score.folding import check_esmfold_folder
        from structures.errors import InputError

        folder = Path(args.esmfold).expanduser()
        if not folder.is_dir():
            ap.error(f"--esmfold: {args.esmfold} is not a folder (a local ESMFold model: config.json + weights)")
        try:
            check_esmfold_folder(folder)
        except InputError as exc:
            ap.error(f"--esmfold: {exc}")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        ap.error(f"--out: {args.out} must be a file in an existing folder")
    return args


def check_models(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Both models load, and the amortised one has a motif input (else exit 2, before anything runs or is written).
    Without ``--amortised-model`` the amortised method uses ``--model`` when that has a motif input (the shipped
    protein_small has one since its re-ship), else it is dropped from ``args.methods`` and noted in
    ``args.skipped``."""
    from pipeline.proteins.network.checkpoint import load_protein_model
    from structures.errors import InputError

    def load(flag: str, model: str | None) -> Any:
        try:
            return load_protein_model(model)  # None: the default model
        except InputError as exc:
            ap.error(f"{flag}: {exc}")

    if args.amortised_model is not None and "amortised" not in args.methods:
        ap.error("--amortised-model: the model of method amortised; add amortised to --methods")
    base = load("--model", args.model)
    args.skipped, args.sources = {}, {"--model": base.source}  # method -> why it is skipped; flag -> the model file
    if args.amortised_model is not None:
        loaded = load("--amortised-model", args.amortised_model)
        if not loaded.net.cfg.motif_input:
            ap.error(f"--amortised-model: {args.amortised_model} has no motif input; give a model trained with "
                     "'genmatch train proteins --motif-prob'")
        args.sources["--amortised-model"] = loaded.source
    elif "amortised" in args.methods:
        if base.net.cfg.motif_input:  # the model already loaded and checked: not read a second time
            args.amortised_model = args.model if args.model is not None else str(base.source)
            args.sources["--amortised-model"] = base.source
        elif args.methods == ("amortised",):
            ap.error("--methods amortised: give --amortised-model PATH (a model trained with --motif-prob)")
        else:
            args.methods = tuple(m for m in args.methods if m != "amortised")
            args.skipped["amortised"] = NO_AMORTISED_MODEL


def table(summaries: dict[str, dict[str, Any]]) -> str:
    cols = ("n_samples", "success_share", "motif_rmsd_mean", "continuous_share", "junction_max_deviation_mean",
            "motif_scaffold_clashes_per_sample", "ca_clashes_per_sample", "ca_ca_outliers_per_sample",
            "chain_breaks_per_sample", "mpnn_codesign_ll")
    short = ("n", "rmsd<1", "rmsd", "contin.", "junct.dev", "motif-clash", "CA-clash", "CA-CA out", "breaks", "mpnn ll")
    lines = [f"{'set':<14}" + "".join(f"{s:>12}" for s in short)]
    for name, s in summaries.items():
        cells = [s.get(c) for c in cols]
        lines.append(f"{name:<14}" + "".join(f"{'-':>12}" if v is None else f"{v:>12.3f}" if isinstance(v, float)
                                              else f"{v:>12}" for v in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    import torch

    from structures.data import load_proteins
    from structures.errors import InputError

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = load_proteins()
    problems = select_motifs(args.seed, N_MOTIFS, ds)[: args.motifs]
    rows: dict[str, list] = {m: [] for m in args.methods}
    jobs, per_motif = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="motif_bench_") as tmp:
            for prob in problems:
                got, placements, _ = run_motif(prob, write_source(ds, prob, Path(tmp)), args)
                for m in args.methods:
                    rows[m] += got[m]
                jobs += [(prob.name, p) for p in placements]
                per_motif.append({"motif": prob.name, "contig": prob.contig, "size": prob.size, "kind": prob.kind,
                                  **{m: {k: summarise(got[m]).get(k) for k in ("success_share", "continuous_share",
                                                                               "motif_rmsd_mean")}
                                     for m in args.methods}})
            base = unconditional(jobs, args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    size = {p.name: p.size for p in problems}
    summaries = {m: summarise(r) for m, r in rows.items()} | {"unconditional": summarise(base)}
    result: dict[str, Any] = {"methods": summaries, "goals": {m: goals(summaries[m], summaries["unconditional"])
                                                             for m in args.methods}}
    result["by_motif_size"] = {f"{lo}-{hi}": {m: summarise([r for r in rows[m] if lo <= size[r["motif"]] <= hi])
                                              for m in args.methods} for lo, hi in SIZE_BINS}
    kind = {p.name: p.kind for p in problems}
    result["by_kind"] = {k: {m: summarise([r for r in rows[m] if kind[r["motif"]] == k]) for m in args.methods}
                         for k in ("contiguous", "discontiguous")}
    if args.esmfold:
        result["designability"] = {m: designability(r, args.esmfold) for m, r in (rows | {"unconditional": base}).items()}
    else:
        result["designability"] = "skipped: no --esmfold PATH given"
    result["skipped"] = args.skipped  # method -> why it did not run
    result["motifs"] = per_motif
    result["settings"] = {"n": args.n, "steps": args.steps, "seed": args.seed, "motifs": len(problems),
                          "methods": list(args.methods), "mpnn": args.mpnn, "threads": args.threads,
                          "model": args.sources["--model"], "amortised_model": args.sources.get("--amortised-model"),
                          "scaffold_length": list(SCAFFOLD_LENGTH), "motif_size": list(MOTIF_SIZE),
                          "source_chains": f"longer than {trained_length_range()[1]} residues, PDB entry not trained on"}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(table(summaries), file=sys.stderr)
    text = json.dumps(result, default=float)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
