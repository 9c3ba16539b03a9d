"""The main job on the embedded defaults (``make demo`` / ``genmatch demo``): the crystal chain
(generate -> relax -> score) and the protein chain (flow vs jump rotations), in one run folder and one summary.

    from workflows.demo import run_demo
    summary = run_demo("runs/demo")        # what `make demo` runs; rerun to resume

Stages (each timed, each with a tqdm bar; all writes atomic):

0. ``sanity``: tokeniser round trip (encode -> decode -> StructureMatcher) of the first Perov-5 /
   Carbon-24 test crystals, and a summary of the protein backbone set (a few seconds).
1. ``generate``: ``n_generate`` (200) Perov-5 crystals from the shipped model ``perov_5`` with the
   default sampler (250 steps, temperature 0.7, seed 0) -> ``OUT/generated`` (CIFs + manifest; decode
   failures counted by reason). Resumable: finished batches are not sampled again.
2. ``relax``: batched in-flight CHGNet FIRE with the cell relaxed (fmax 0.1 eV/A, 1,500 steps) ->
   ``OUT/relaxed`` (CIFs, ``relax_results.csv/.parquet``, ``relax_summary.json``). Resumable.
3. ``score``: the relaxed crystals against Perov-5 test with the CDVAE protocol (structural /
   compositional validity, COV-R / COV-P with the Perov-5 cutoffs, Wasserstein distances of density
   and N_el) and E_hull from the relaxed CHGNet energies. A structure whose relaxation *failed* is
   scored in its generated geometry and flagged (``relax_status`` = failed, ``relaxed`` = False);
   it gets no energy, hence no E_hull and is never counted stable. Structures at the step limit
   are scored in their last geometry with their last energy (``relax_status`` = step_limit).
   The as-generated (unrelaxed) crystals are scored first, the same way without E_hull
   (``OUT/as_generated``), so the effect of relaxation is visible. Fingerprints are cached by
   content hash (``GENMATCH_CACHE``); those of the 3,785 test crystals ship with genmatch
   (``pipeline/score/reference_data``, made by ``tools/make_reference_data.py``), so a cold run
   computes only the samples'. COV-R depends on the number of samples (200 samples against
   3,785 test crystals cover fewer than 1,000 would). Every stability number comes with the hull's
   coverage (share of samples with every element in a hull compound beneath them); below
   100 % the stable rate is reported as an upper bound.

   The hull: ``hull="default"`` (default) is the MP elemental references plus the CHGNet-relaxed
   Perov-5 **val** crystals (the training split) — only those inside the chemical systems of the
   generated crystals, which are the only ones that can change their E_hull (about 260 for 200
   samples; their relaxed energies ship with genmatch, others are relaxed once and cached). ``hull="mp-elements"`` compares with the
   elemental references only: E_hull is then the formation energy with respect to the elements, a
   *lower bound* on the true E_hull (and the stable rate an upper bound).

4. ``proteins_generate`` / ``proteins_score`` (:mod:`workflows.demo.proteins`): 16 + 16 co-designed proteins of
   lengths 70 and 100 per rotation generator from the shipped ``pipeline/models/protein_small.safetensors``
   (25 sampler steps, seed 0), once with rotations "flow" (MultiFlow's geodesic flow) and once with "jump"
   (the SO(3) vMF jump of GM section 9) -> ``OUT/proteins_flow``, ``OUT/proteins_jump``; scored offline
   (no ESMFold: designability "unavailable", ProteinMPNN log-likelihood / recovery proxies; DSSP; geometry;
   diversity; novelty against only the first 100 of the 3,000 reference chains, a demo setting that the
   report says) -> ``OUT/proteins_flow_scores``, ``OUT/proteins_jump_scores``, plots copied to
   ``OUT/proteins_<rotations>_<plot>.png``. Resumable (generation per batch, scores through the cache).

torch runs with one thread in the demo (``threads``): for 5-atom cells intra-op threads do not pay,
and on 2 shared cores they made sampling 8x and CHGNet 11x slower; the parallel part is the
fingerprints, in ``workers`` processes.

Validity and COV-P are reported over the decoded crystals (the scorer's own keys) and over all
``n_generate`` samples (``*_all`` keys: a decode failure counts as invalid and as a miss), as in
``benchmarks/crystal_model_quality.py``. The printed table uses the ``*_all`` values.

Outputs in ``OUT``: ``scores.csv/.parquet`` (one row per decoded crystal), ``summary.json`` (the
scorer's summary), ``density.png``, ``n_elements.png``, ``e_hull.png``, the protein plots, and ``demo_summary.json``
(all stage summaries, settings and wall times per stage). ``OUT`` is a run folder: its ``run.json``
guards a resumed run against other settings (``restart=True`` discards the previous run).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field, fields
from typing import Any

from pipeline.common.io import read_crystal_input, write_text
from pipeline.common.records import JsonRecord
from pipeline.common.run import open_run
from pipeline.crystals.score.summary import ScoreSummary
from workflows.demo.config import GENERATE_BATCH, HULLS, PROTEIN_ROTATIONS, DemoConfig
from workflows.demo.crystals import DemoScores, format_crystals, quiet_known_warnings, run_crystals, sanity
from workflows.demo.proteins import DemoProteins, format_proteins, run_proteins

__all__ = ["DemoConfig", "DemoProteins", "DemoScores", "DemoSummary", "GENERATE_BATCH", "HULLS", "PROTEIN_ROTATIONS",
           "format_summary", "run_demo"]


@dataclass
class DemoSummary(JsonRecord):
    """``OUT/demo_summary.json``: every stage's summary, the settings and the wall time per stage.

    ``scores``: the relaxed crystals' scores; ``scores_as_generated``: the unrelaxed ones' (None when not
    scored: ``{}`` in the JSON). Both are written in :class:`ScoreSummary`'s flat layout. ``proteins``: the
    sanity summary of the protein data set; ``protein_generation``: the generated proteins per rotation
    generator and their scores (:class:`DemoProteins`)."""

    out_dir: str
    settings: dict[str, Any]
    roundtrip: dict[str, Any]
    proteins: dict[str, Any]
    generation: dict[str, Any]
    relaxation: dict[str, Any]
    scores: DemoScores
    protein_generation: DemoProteins
    scores_as_generated: ScoreSummary | None = None
    wall_seconds: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        d["scores"] = self.scores.to_dict()
        d["protein_generation"] = self.protein_generation.to_dict()
        raw = self.scores_as_generated
        d["scores_as_generated"] = raw.to_dict() if raw is not None else {}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoSummary":
        d = dict(d)
        if isinstance(d.get("scores"), dict):
            d["scores"] = DemoScores.from_dict(d["scores"])
        if isinstance(d.get("protein_generation"), dict):
            d["protein_generation"] = DemoProteins.from_dict(d["protein_generation"])
        raw = d.get("scores_as_generated")
        if isinstance(raw, dict):  # {}: not scored
            d["scores_as_generated"] = ScoreSummary.from_dict(raw) if raw else None
        return super().from_dict(d)


@quiet_known_warnings
def run_demo(config: DemoConfig = DemoConfig(), out_dir: str | os.PathLike = "runs/demo", *, restart: bool = False,
             progress: bool = True, verbose: bool = True) -> DemoSummary:
    """Generate -> relax -> score Perov-5 crystals, then generate (flow and jump rotations) -> score proteins,
    all with the shipped models; return the demo summary.

    ``out_dir`` is a run folder (:func:`pipeline.common.run.open_run`) holding the stages' run folders
    (``generated/``, ``relaxed/``, ``proteins_<rotations>/``, ``proteins_<rotations>_scores/``): a rerun with
    the same :meth:`DemoConfig.settings` resumes, other settings are refused unless ``restart``.
    """
    config.validate()
    c = config
    workers = c.workers or len(os.sched_getaffinity(0))
    t_start = time.perf_counter()
    wall: dict[str, float] = {}

    t = time.perf_counter()
    ref = read_crystal_input("perov_5:test", limit=c.reference_limit)  # first: a missing data set fails early
    with open_run(out_dir, "demo", {**c.settings(), "generate_batch": GENERATE_BATCH}, ref.fingerprint,
                  restart=restart) as run:
        out = run.path
        checks = sanity(ref.structures, c.n_crystals, c.n_proteins)
        wall["sanity"] = time.perf_counter() - t
        crystals = run_crystals(c, out, ref, workers, wall, progress=progress)
        proteins = run_proteins(c, out, workers, wall, progress=progress)
        wall["total"] = time.perf_counter() - t_start
        files = sorted({p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
                       | {"demo_summary.json"})
        summary = DemoSummary(out_dir=str(out), settings={**c.settings(), "workers": workers, "threads": c.threads},
                              roundtrip=checks["roundtrip"], proteins=checks["proteins"],
                              generation=crystals.generation, relaxation=crystals.relaxation, scores=crystals.scores,
                              protein_generation=proteins, scores_as_generated=crystals.scores_as_generated,
                              wall_seconds={k: round(v, 1) for k, v in wall.items()}, files=files)
        write_text(out / "demo_summary.json", summary.to_json())
    if verbose:
        print(format_summary(summary))
    return summary


def format_summary(summary: DemoSummary) -> str:
    """The demo's printed report: the crystal metric table (as generated vs relaxed; the stable rate with its
    hull coverage, "upper bound" below 100 %), the protein table (flow vs jump rotations, novelty labelled
    with its reference size) and wall times per stage."""
    lines = format_crystals(summary.generation, summary.relaxation, summary.scores, summary.scores_as_generated)
    lines += [""] + format_proteins(summary.protein_generation) + [""]
    w = summary.wall_seconds
    lines.append("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in w.items() if k != "total")
                 + f"; total {w['total']:.0f} s ({w['total'] / 60:.1f} min)")
    rt = summary.roundtrip
    p = summary.proteins
    lines.append("sanity: tokeniser round trip " + ", ".join(
        f"{k} {100 * v['match_rate']:.1f} % of {v['n']}" for k, v in rt.items())
        + f"; proteins: {p['chains_in_set']} chains, CA-CA {p['ca_ca_mean_A']:.3f} +- {p['ca_ca_std_A']:.3f} A")
    rots = ", ".join(f"proteins_{r}/, proteins_{r}_scores/" for r in summary.protein_generation.runs)
    lines.append(f"report: {summary.out_dir}/ (demo_summary.json, summary.json, scores.csv/.parquet, PNG plots; "
                 f"generated/, relaxed/, as_generated/, {rots})")
    return "\n".join(lines)
