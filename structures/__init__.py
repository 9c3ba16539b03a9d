"""genmatch.structures: proteins and crystals as data (files, frames, tokens, data sets). Knows no models.

Modules (import what you need; nothing heavy is imported here):

- ``structures.data``: data root, named data sets, CDVAE CSVs -> pymatgen, the protein npz.
- ``structures.crystals.tokens``: the 878-token crystal vocabulary of KO appendix E.2, canonical
  cell, vectorised encode / decode with typed decode failures, padded batches with masks.
- ``structures.crystals.roundtrip``: decode(encode(s)) fidelity report (StructureMatcher + errors).
- ``structures.crystals.dataset``: cached tokenised CDVAE CSVs (torch Dataset, npz cache) and the
  atom-count distribution for sampling.
- ``structures.proteins.frames``: backbone frames from N, CA, C (AF2 Gram-Schmidt) and idealised N, CA, C, O.
- ``structures.proteins.io``: PDB / mmCIF / BinaryCIF read and write with biotite.
- ``structures.proteins.dataset``: protein data sets (npz or folders), length buckets, grouped split.
- ``structures.atomic``: atomic file writes (temp file + rename).
"""
