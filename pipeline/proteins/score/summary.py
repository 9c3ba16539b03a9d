"""The protein scorer's entry point over a :class:`ProteinInput`: per-sample table + typed summary.

Designability follows the protocol only with a folding backend; without one the summary says
"designability: unavailable (no ESMFold weights at ...)" and carries no designability number, only the
offline proxies (ProteinMPNN log-likelihood of its designs and of the co-designed sequence, and MPNN
recovery of the co-designed sequence). Diversity and novelty are over the designable samples, or over all
scored samples when designability is unavailable (``diversity_over`` / ``novelty_over`` say which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.common.parallel import ComputeConfig
from pipeline.common.records import JsonRecord
from pipeline.proteins.score.config import ProteinScoreConfig
from pipeline.proteins.score.inputs import ProteinInput, backbone_hash
from pipeline.proteins.score.reference import ReferenceSpec, load_reference, reference_spec
from pipeline.proteins.score.score import novelty, pairwise_tm, score_samples, trace_of
from pipeline.proteins.score.tm import diversity

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LIST_COLUMNS = ("mpnn_sequences", "mpnn_log_likelihoods", "scrmsds")


@dataclass
class ProteinScoreSummary(JsonRecord):
    """Summary of a scored backbone set (``summary.json``). Rates are over the scored samples."""

    n_input: int = 0
    n_scored: int = 0
    n_failed: int = 0
    input: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    designability: str = ""  # "available (...)" or "unavailable (no ESMFold weights at ...)"
    designable_fraction: float | None = None
    n_designable: int | None = None
    scrmsd_median: float | None = None
    codesign_designable_fraction: float | None = None
    n_codesigned: int = 0
    mpnn_log_likelihood: float | None = None  # mean per-residue log p of the MPNN designs (nats)
    codesign_log_likelihood: float | None = None  # of the co-designed sequences
    mpnn_recovery: float | None = None  # designs vs the co-designed sequence
    length_mean: float | None = None
    radius_of_gyration_mean: float | None = None
    with_chain_breaks: float | None = None  # share of samples
    with_ca_ca_outliers: float | None = None
    with_clashes: float | None = None  # CA-CA < 3 A or backbone atoms < 2 A
    helix: float | None = None
    strand: float | None = None
    coil: float | None = None
    diversity_over: str = ""
    diversity_n: int = 0
    n_clusters: int | None = None
    cluster_fraction: float | None = None
    mean_pairwise_tm: float | None = None
    novelty_over: str = ""
    novelty_reference: str = ""
    n_reference: int = 0
    novelty: float | None = None  # mean of 1 - max TM
    max_tm_mean: float | None = None
    novelty_alignments: int = 0  # TM-align calls left by the exact bound
    novelty_alignments_plain: int = 0  # what the plain exhaustive loop would make


@dataclass
class ScoredProteins:
    """``table``: one row per input, in input order, its ``id`` the caller's id (failed ones with ``status`` "failed"
    and a ``problem``); ``summary``; ``out_dir``: the run folder (None: in memory only); ``tm``: the pairwise TM
    matrix of the diversity set (``tm_ids`` its rows)."""

    table: "pd.DataFrame"
    summary: ProteinScoreSummary
    out_dir: Path | None = None
    tm: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    tm_ids: list[str] = field(default_factory=list)


def _mean(x: list[float | None]) -> float | None:
    v = [float(a) for a in x if a is not None and np.isfinite(a)]
    return float(np.mean(v)) if v else None


def score_proteins(inp: ProteinInput, config: ProteinScoreConfig = ProteinScoreConfig(),
                   compute: ComputeConfig = ComputeConfig(), threads: int | None = None,
                   reference: ReferenceSpec | None = None) -> ScoredProteins:
    """Score every usable backbone of ``inp`` (see the module docstring). ``reference`` overrides
    ``config.reference`` (e.g. an inline set)."""
    ok = inp.usable()
    records = score_samples(inp, config, compute, threads)
    ids = [inp.ids[i] for i in ok]
    hashes = [backbone_hash(inp.chains[i]) for i in ok]
    traces = [trace_of(inp.chains[i]) for i in ok]
    folded = config.esmfold_path() is not None
    s = ProteinScoreSummary(n_input=len(inp), n_scored=len(ok), n_failed=len(inp) - len(ok), input=inp.source)
    s.protocol = {"inverse_folding": f"ProteinMPNN {config.mpnn.model} ({config.mpnn.family}, full backbone), "
                  f"T {config.mpnn.temperature}, {config.mpnn.n_sequences} sequences, seed {config.mpnn.seed}",
                  "folding": f"ESMFold ({config.esmfold_path()})" if folded else None,
                  "scrmsd": f"Kabsch over N, CA, C; designable: best of {config.mpnn.n_sequences} < "
                            f"{config.scrmsd_threshold} A",
                  "dssp": "pydssp, simplified classes (helix H/G/I, strand E/B, coil)",
                  "diversity": f"TM-align (tmtools) all-vs-all, mean of both normalisations; average linkage "
                               f"at TM {config.tm_threshold} (scipy)",
                  "novelty": "1 - max TM-score (normalised by the sample) to the reference, exhaustive (exact "
                             "length bound)"}
    where = config.esmfold_path() or "--esmfold PATH or $GENMATCH_ESMFOLD (none given)"
    s.designability = (f"available (ESMFold at {where})" if folded else f"unavailable (no ESMFold weights at {where})")
    s.n_codesigned = sum(bool(r["codesigned"]) for r in records)
    s.mpnn_log_likelihood = _mean([r["mpnn_log_likelihood"] for r in records])
    s.codesign_log_likelihood = _mean([r["codesign_log_likelihood"] for r in records])
    s.mpnn_recovery = _mean([r["mpnn_recovery"] for r in records])
    if folded and records:
        des = [bool(r["designable"]) for r in records]
        s.designable_fraction, s.n_designable = float(np.mean(des)), int(sum(des))
        s.scrmsd_median = float(np.median([r["scrmsd"] for r in records]))
        cs = [r["codesign_designable"] for r in records if "codesign_designable" in r]
        s.codesign_designable_fraction = float(np.mean(cs)) if cs else None
    _geometry_dssp(s, records)
    subset = [k for k, r in enumerate(records) if r.get("designable")] if folded else list(range(len(records)))
    label = "designable samples" if folded else "all samples (designability unavailable)"
    tm = np.zeros((0, 0))
    if config.diversity:
        tm = pairwise_tm([traces[k] for k in subset], [hashes[k] for k in subset], compute)
        dv = diversity(tm, config.tm_threshold)
        s.diversity_over, s.diversity_n = label, dv.n
        s.n_clusters, s.cluster_fraction = dv.n_clusters, dv.cluster_fraction
        s.mean_pairwise_tm = None if not np.isfinite(dv.mean_pairwise_tm) else dv.mean_pairwise_tm
        for k, lab in zip(subset, dv.labels):
            records[k]["cluster"] = int(lab)
    spec = reference or reference_spec(config.reference, config.reference_limit)
    if spec is not None and records:
        hits = novelty(traces, hashes, spec, compute)
        for r, h in zip(records, hits):
            r.update(max_tm=h["max_tm"], novelty=1.0 - h["max_tm"], nearest_reference=h["best_name"])
        s.novelty_over, s.novelty_reference = label, spec.describe()
        s.n_reference = len(load_reference(spec).traces)
        s.max_tm_mean = _mean([hits[k]["max_tm"] for k in subset])
        s.novelty = None if s.max_tm_mean is None else 1.0 - s.max_tm_mean
        s.novelty_alignments = int(sum(h["n_aligned"] for h in hits))
        s.novelty_alignments_plain = int(sum(h["n_reference"] for h in hits))
    return ScoredProteins(_table(inp, ok, records), s, None, tm, [ids[k] for k in subset])


def _geometry_dssp(s: ProteinScoreSummary, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    s.length_mean = _mean([r["length"] for r in records])
    s.radius_of_gyration_mean = _mean([r["radius_of_gyration"] for r in records])
    s.with_chain_breaks = float(np.mean([r["n_chain_breaks"] > 0 for r in records]))
    s.with_ca_ca_outliers = float(np.mean([r["n_ca_ca_outliers"] > 0 for r in records]))
    s.with_clashes = float(np.mean([r["n_ca_clashes"] + r["n_atom_clashes"] > 0 for r in records]))
    s.helix, s.strand, s.coil = (_mean([r[k] for r in records]) for k in ("helix", "strand", "coil"))


def _table(inp: ProteinInput, ok: list[int], records: list[dict[str, Any]]) -> "pd.DataFrame":
    """One row per input, in input order; list-valued fields joined with ';' (CSV-safe)."""
    import pandas as pd

    by_index = dict(zip(ok, records))
    rows = []
    for i, ident in enumerate(inp.ids):
        r = dict(by_index.get(i, {}))
        for k in LIST_COLUMNS:
            if k in r:
                r[k] = ";".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r[k])
        rows.append({"id": ident, "status": "scored" if i in by_index else "failed",
                     "problem": inp.problems[i] or "", **r})
    return pd.DataFrame(rows)
