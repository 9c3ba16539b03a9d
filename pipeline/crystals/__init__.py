"""Crystals in the pipeline: the KO-DFM flow on the KO E.2 tokens, the permutation-invariant DiT, and the stages.

- :mod:`.flow`: the token path, scheduler and loss shared by training and sampling; model files.
- :mod:`.network`: the DiT (KO appendix E.2).
- :mod:`.generate`: sampling and resumable generation runs.
- :mod:`.train`: training (Lightning).
- :mod:`.relax`: CHGNet relaxation (batched FIRE) and resumable relax runs.
- :mod:`.score`: CDVAE-protocol validity, coverage, property distances; E_hull, S.U.N.; score runs.
- :mod:`.inputs`: every way a caller hands crystals to a stage (Structures, ASE Atoms, dicts, results, files).
- :mod:`.results`: what the stages return (GeneratedCrystals, RelaxedCrystals, ScoredCrystals).
- :mod:`.names`: the choices of configs and the command line, importable without torch.

The protein twin is :mod:`pipeline.proteins`, room for room.
"""
