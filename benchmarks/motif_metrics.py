"""Per-sample metrics of the motif-scaffolding benchmark (``motif_scaffolding.py``, issue 24): motif RMSD, junction
continuity (CA-CA 3.8 +- 0.25 A where a motif residue meets a free one), CA clashes (all and motif-scaffold), and
their summaries and the issue's goals against the unconditional baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

SUCCESS_RMSD = 1.0  # A: a motif counts as placed below this backbone RMSD
GOAL_SHARE = 0.9  # issue 24: at least 90 % of samples


def motif_rmsd(coords: np.ndarray, motif: np.ndarray, positions: np.ndarray) -> tuple[float, float]:
    """(backbone N/CA/C, CA) Kabsch RMSD of the sample's ``coords`` [L, 4, 3] at ``positions`` [m] to the motif's
    ``motif`` [m, 4, 3]."""
    from pipeline.proteins.score.folding import kabsch_rmsd

    x = np.asarray(coords)[positions]
    return (kabsch_rmsd(x[:, :3].reshape(-1, 3), np.asarray(motif)[:, :3].reshape(-1, 3)),
            kabsch_rmsd(x[:, 1], np.asarray(motif)[:, 1]))


def junction_distances(ca: np.ndarray, motif_mask: np.ndarray) -> np.ndarray:
    """CA-CA distances [J] of the scaffold's adjacent pairs with one motif and one free residue."""
    m = np.asarray(motif_mask, bool)
    at = np.flatnonzero(m[1:] != m[:-1])
    return np.linalg.norm(ca[at + 1] - ca[at], axis=-1)


def continuous(distances: np.ndarray) -> bool:
    """Every junction at 3.80 +- 0.25 A (a sample without junctions is continuous)."""
    from pipeline.proteins.score.geometry import CA_CA, CA_CA_TOL

    return bool((np.abs(np.asarray(distances) - CA_CA) <= CA_CA_TOL).all())


def ca_clashes(ca: np.ndarray, motif_mask: np.ndarray) -> tuple[int, int]:
    """(all, motif-scaffold) CA pairs closer than 3 A between residues at least 2 apart."""
    from pipeline.proteins.score.geometry import CLASH_CA

    d = np.linalg.norm(ca[:, None] - ca[None], axis=-1)
    i, j = np.triu_indices(len(ca), k=2)
    close = d[i, j] < CLASH_CA
    m = np.asarray(motif_mask, bool)
    return int(close.sum()), int((close & (m[i] != m[j])).sum())


def sample_metrics(coords: np.ndarray, motif_mask: np.ndarray, motif: np.ndarray | None) -> dict[str, float]:
    """The per-sample numbers (module docstring); ``motif`` [m, 4, 3] in contig order, None: no RMSD."""
    from pipeline.proteins.score.geometry import CA_CA, backbone_geometry

    ca, mask = coords[:, 1], np.asarray(motif_mask, bool)
    geo = backbone_geometry(coords)
    junctions = junction_distances(ca, mask)
    clashes, motif_clashes = ca_clashes(ca, mask)
    row = {"length": len(coords), "continuous": continuous(junctions),
           "junction_max_deviation": float(np.abs(junctions - CA_CA).max()) if len(junctions) else 0.0,
           "ca_clashes": clashes, "motif_scaffold_clashes": motif_clashes,
           "ca_ca_outliers": geo.n_ca_ca_outliers, "chain_breaks": geo.n_chain_breaks}
    if motif is not None:
        row["motif_rmsd"], row["motif_ca_rmsd"] = motif_rmsd(coords, motif, np.flatnonzero(mask))
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares and means over sample rows."""
    if not rows:
        return {"n_samples": 0}
    def mean(k: str) -> float:
        return float(np.mean([r[k] for r in rows]))

    out = {"n_samples": len(rows), "continuous_share": mean("continuous"),
           "junction_max_deviation_mean": mean("junction_max_deviation"), "ca_clashes_per_sample": mean("ca_clashes"),
           "motif_scaffold_clashes_per_sample": mean("motif_scaffold_clashes"),
           "with_motif_scaffold_clash": float(np.mean([r["motif_scaffold_clashes"] > 0 for r in rows])),
           "ca_ca_outliers_per_sample": mean("ca_ca_outliers"), "chain_breaks_per_sample": mean("chain_breaks")}
    if "motif_rmsd" in rows[0]:
        out.update(motif_rmsd_mean=mean("motif_rmsd"), motif_rmsd_median=float(np.median([r["motif_rmsd"] for r in rows])),
                   motif_ca_rmsd_mean=mean("motif_ca_rmsd"),
                   success_share=float(np.mean([r["motif_rmsd"] < SUCCESS_RMSD for r in rows])),
                   success_and_continuous=float(np.mean([r["motif_rmsd"] < SUCCESS_RMSD and r["continuous"]
                                                         for r in rows])))
    for k in ("mpnn_codesign_ll", "mpnn_design_ll"):
        if k in rows[0]:
            out[k] = mean(k)
    return out


def goals(method: dict[str, Any], baseline: dict[str, Any]) -> dict[str, bool]:
    """Issue 24's goals for one method against the unconditional baseline."""
    return {"rmsd_success_ge_90": method["success_share"] >= GOAL_SHARE,
            "continuous_ge_90": method["continuous_share"] >= GOAL_SHARE,
            "motif_clashes_le_unconditional": (method["motif_scaffold_clashes_per_sample"]
                                              <= baseline["motif_scaffold_clashes_per_sample"]),
            "ca_ca_outliers_le_unconditional": (method["ca_ca_outliers_per_sample"]
                                               <= baseline["ca_ca_outliers_per_sample"])}
