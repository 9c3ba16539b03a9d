"""The bad-input cases of protein design (issue 24): every design option of ``generate proteins`` (motif,
contig, length range, motif sequence, fixed / forbidden / allowed amino acids, refinement, start time) and the
combinations that cannot hold, each refused with exit 2 before anything is written (the amortised motif method
with a model that has no motif input too, and ``train proteins --motif-prob`` outside [0, 1]). The twin of
``bad_input_conditions.py`` (crystals); the cases join ``ERRORS`` of ``test_bad_input_proteins.py`` and run with its
corpus (``{good_pdb}``: 45 residues of chain A, numbered 1-45) and contract (``bad_input_corpus.py``)."""

from __future__ import annotations

from bad_input_corpus import C, Case

E = "{OUT}"
RUN = ["--per-length", "1", "--steps", "2", "--quiet", "--threads", "1"]
GP = ("generate", "proteins", *RUN)
MOTIF = ["--motif", "{good_pdb}"]
SCAFFOLD = [*MOTIF, "--contig", "5-10/A5-14/5-10"]
REFINE = ["--refine", "{good_pdb}", "--start-time", "0.6"]
AMORTISED = "'amortised' needs a model trained with motif masks ('genmatch train proteins --motif-prob P'"
DESIGN_ERRORS: dict[str, Case] = {  # name -> case
    # ---- the motif and its contig
    "design-motif-residues-missing": C(*GP, *MOTIF, "--contig", "5/A40-50/5", "--out", E,
                                       text="chain A has no residues A46-50"),
    "design-motif-overlapping-segments": C(*GP, *MOTIF, "--contig", "A5-14/5/A10-20", "--out", E,
                                           text="motif segments A5-14 and A10-20 overlap"),
    "design-motif-length-cannot-hold": C(*GP, *SCAFFOLD, "--length", "100-120", "--out", E,
                                         text="length 100-120 cannot hold contig"),
    "design-motif-length-too-short": C(*GP, *MOTIF, "--contig", "A5-30", "--length", "10-20", "--out", E,
                                       text="cannot hold contig A5-30"),
    "design-motif-unknown-chain": C(*GP, *MOTIF, "--contig", "5/B5-14/5", "--out", E,
                                    text="has no protein chain 'B'"),
    "design-motif-method-without-motif": C(*GP, "--lengths", "50", "--motif-method", "hold", "--out", E,
                                           text="--motif-method says how a motif is kept"),
    "design-motif-method-unknown": C(*GP, *SCAFFOLD, "--motif-method", "glue", "--out", E,
                                     text="invalid choice"),
    "design-motif-guidance-without-guided": C(*GP, *SCAFFOLD, "--motif-guidance", "4", "--out", E,
                                              text="--motif-guidance is the strength of --motif-method guided"),
    "design-motif-guidance-negative": C(*GP, *SCAFFOLD, "--motif-method", "guided", "--motif-guidance", "-1",
                                        "--out", E, text="--motif-guidance"),
    "design-motif-guidance-not-a-number": C(*GP, *SCAFFOLD, "--motif-method", "guided", "--motif-guidance", "nan",
                                            "--out", E, text="--motif-guidance"),
    # amortised needs a model with a motif input ({plain_model}: protein_small without it): refused once the model
    # is read, before the run folder is opened (into an existing run: this message, not "holds a ... run")
    "design-motif-amortised-without-motif-input": C(*GP, *SCAFFOLD, "--model", "{plain_model}", "--motif-method",
                                                    "amortised", "--out", E, text=AMORTISED),
    "design-motif-amortised-into-gen-run": C(*GP, *SCAFFOLD, "--model", "{plain_model}", "--motif-method",
                                             "amortised", "--out", "{gen_run}", text=AMORTISED),
    "design-train-motif-prob-above-1": C("train", "proteins", "--motif-prob", "1.5", "--out", E,
                                         text="--motif-prob"),
    "design-train-motif-prob-negative": C("train", "proteins", "--motif-prob", "-0.1", "--out", E,
                                          text="--motif-prob"),
    "design-contig-syntax": C(*GP, *MOTIF, "--contig", "10-40/A3-", "--out", E,
                              text="expected a number after '-'"),
    "design-contig-several-chains": C(*GP, *MOTIF, "--contig", "A5-14/0 10-20", "--out", E,
                                      text="several chains"),
    "design-contig-without-motif": C(*GP, "--contig", "5-10/A5-14/5-10", "--out", E,
                                     text="contig: a contig places the residues of a motif file; give motif too"),
    "design-motif-without-contig": C(*GP, *MOTIF, "--out", E, text="give contig too"),
    "design-length-without-contig": C(*GP, "--length", "60-80", "--out", E, text="length: a contig places"),
    "design-length-bad": C(*GP, *SCAFFOLD, "--length", "60-x", "--out", E, text="expected a number of residues"),
    "design-motif-sequence-without-motif": C(*GP, "--motif-sequence", "--out", E,
                                             text="motif_sequence: keeps the motif's amino acids"),
    "design-motif-missing": C(*GP, "--motif", "{root}/none.pdb", "--contig", "5/A5-14/5", "--out", E,
                              text="none.pdb: no such file"),
    "design-motif-bad-file": C(*GP, "--motif", "{s_cut_mid_line}", "--contig", "5/A5-14/5", "--out", E,
                               text="cannot read as PDB"),
    "design-motif-fifo": C(*GP, "--motif", "{special}/fifo.pdb", "--contig", "5/A5-14/5", "--out", E,
                           text="a fifo (named pipe)"),
    "design-lengths-with-motif": C(*GP, *SCAFFOLD, "--lengths", "50", "--out", E, text="drop --lengths"),
    # ---- fixed, forbidden and allowed amino acids
    "design-fix-not-in-motif": C(*GP, *SCAFFOLD, "--fix", "A30=W", "--out", E,
                                 text="residue A30 is not a motif residue"),
    "design-fix-position-out-of-range": C(*GP, *SCAFFOLD, "--fix", "200=W", "--out", E,
                                          text="position 200 is beyond the shortest designed chain"),
    "design-fix-position-beyond-lengths": C(*GP, "--lengths", "50", "--fix", "51=W", "--out", E,
                                            text="position 51 is beyond the shortest designed chain (50"),
    "design-fix-chain-without-file": C(*GP, "--lengths", "50", "--fix", "A5=W", "--out", E,
                                       text="names a residue of an input file; give motif or refine"),
    "design-fix-syntax": C(*GP, *SCAFFOLD, "--fix", "A5W", "--out", E, text="is not <residue>=<amino acids>"),
    "design-fix-not-amino-acid": C(*GP, *SCAFFOLD, "--fix", "A5=J", "--out", E,
                                   text="'J' is not one of the 20 amino acids"),
    "design-fix-two-letters": C(*GP, *SCAFFOLD, "--fix", "A5=WH", "--out", E, text="is given 2 amino acids"),
    "design-fix-twice": C(*GP, *SCAFFOLD, "--fix", "A5=W,A5=H", "--out", E, text="residue A5 is given twice"),
    "design-fix-position-0": C(*GP, "--lengths", "50", "--fix", "0=W", "--out", E, text="a position >= 1"),
    "design-fix-forbidden": C(*GP, *SCAFFOLD, "--fix", "A5=C", "--forbid", "C", "--out", E,
                              text="fixed to C, which forbid excludes"),
    "design-forbid-not-amino-acid": C(*GP, "--lengths", "50", "--forbid", "X", "--out", E,
                                      text="'X' is not one of the 20 amino acids"),
    "design-forbid-digit": C(*GP, "--lengths", "50", "--forbid", "C,1", "--out", E,
                             text="'1' is not one of the 20 amino acids"),
    "design-forbid-lower-case": C(*GP, "--lengths", "50", "--forbid", "c", "--out", E,
                                  text="'c' is not one of the 20 amino acids"),
    "design-forbid-all": C(*GP, "--lengths", "50", "--forbid", "ARNDCQEGHILKMFPSTWYV", "--out", E,
                           text="all 20 amino acids are forbidden"),
    "design-allow-not-amino-acid": C(*GP, "--lengths", "50", "--allow", "5=DZ", "--out", E,
                                     text="'Z' is not one of the 20 amino acids"),
    "design-allow-only-forbidden": C(*GP, "--lengths", "50", "--allow", "5=C", "--forbid", "C", "--out", E,
                                     text="allows only forbidden amino acids"),
    "design-allow-and-fix": C(*GP, "--lengths", "50", "--allow", "5=DE", "--fix", "5=D", "--out", E,
                              text="residue 5 is also fixed"),
    # ---- refinement
    "design-start-time-1": C(*GP, "--refine", "{good_pdb}", "--start-time", "1", "--out", E, text="--start-time"),
    "design-start-time-0": C(*GP, "--refine", "{good_pdb}", "--start-time", "0", "--out", E, text="--start-time"),
    "design-start-time-nan": C(*GP, "--refine", "{good_pdb}", "--start-time", "nan", "--out", E,
                               text="--start-time"),
    "design-start-time-without-refine": C(*GP, "--start-time", "0.5", "--out", E,
                                          text="start_time: refinement starts from a structure; give refine too"),
    "design-refine-without-start-time": C(*GP, "--refine", "{good_pdb}", "--out", E, text="give start_time too"),
    "design-refine-missing": C(*GP, "--refine", "{root}/none.pdb", "--start-time", "0.6", "--out", E,
                               text="none.pdb: no such file"),
    "design-refine-bad-file": C(*GP, "--refine", "{s_nan}", "--start-time", "0.6", "--out", E,
                                text="non-finite coordinates"),
    "design-refine-fix-not-in-chain": C(*GP, *REFINE, "--fix", "A90=W", "--out", E,
                                        text="residue A90 is not in the refined chain A (residues 1-45)"),
    "design-refine-with-lengths": C(*GP, *REFINE, "--lengths", "50", "--out", E, text="drop --lengths"),
    # ---- modes that cannot hold together
    "design-motif-and-refine": C(*GP, *SCAFFOLD, *REFINE, "--out", E, text="give motif (scaffolding) or refine"),
    "design-motif-inverse-folding": C(*GP, *SCAFFOLD, "--mode", "inverse-folding", "--structure-in", "{good_pdb}",
                                      "--out", E, text="motif cannot be combined with structure_in"),
    "design-refine-folding": C(*GP, *REFINE, "--mode", "forward-folding", "--sequence-in", "{good_fasta}",
                               "--out", E, text="refine cannot be combined with sequence_in"),
    "design-fix-structure-mode": C(*GP, *SCAFFOLD, "--mode", "structure", "--fix", "A5=W", "--out", E,
                                   text="mode 'structure' generates no sequence to constrain"),
    "design-motif-sequence-structure-mode": C(*GP, *SCAFFOLD, "--mode", "structure", "--motif-sequence", "--out",
                                              E, text="motif_sequence: mode 'structure' generates no sequence"),
    "design-forbid-folding": C(*GP, "--mode", "forward-folding", "--sequence-in", "{good_fasta}", "--forbid", "C",
                               "--out", E, text="forbid: mode 'folding' generates no sequence"),
    "design-into-gen-run": C(*GP, *SCAFFOLD, "--out", "{gen_run}", text="holds a generate-proteins run"),
}
