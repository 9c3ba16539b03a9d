"""Crystal scoring: CDVAE-protocol validity, coverage and property distances; CHGNet stability
against a user-chosen reference hull; uniqueness, novelty and S.U.N. (CDVAE and FlowMM; docs/protocols.md)."""

from pipeline.crystals.score.coverage import COV_CUTOFFS, CoverageResult, coverage
from pipeline.crystals.score.fingerprints import (
    Fingerprints,
    composition_fingerprint,
    compute_fingerprints,
    structure_fingerprint,
)
from pipeline.crystals.score.hull import ReferenceHull
from pipeline.crystals.score.properties import property_wdists
from pipeline.crystals.score.summary import ScoreSummary, StabilitySummary
from pipeline.crystals.score.validity import compositional_validity, structural_validity

__all__ = [
    "COV_CUTOFFS", "CoverageResult", "Fingerprints", "ReferenceHull", "ScoreSummary", "StabilitySummary",
    "composition_fingerprint", "compositional_validity", "compute_fingerprints", "coverage", "property_wdists",
    "structural_validity", "structure_fingerprint",
]
