"""genmatch.structures: proteins and crystals as data (files, frames, tokens, data sets). Knows no models.

Modules (import what you need; nothing heavy is imported here):

- ``structures.data``: data root, named data sets, CDVAE CSVs -> pymatgen, the protein npz.
- ``structures.crystal_tokens``: the 878-token crystal vocabulary of KO appendix E.2, canonical
  cell, vectorised encode / decode with typed decode failures, padded batches with masks.
- ``structures.crystal_roundtrip``: decode(encode(s)) fidelity report (StructureMatcher + errors).
- ``structures.crystal_dataset``: cached tokenised CDVAE CSVs (torch Dataset, npz cache) and the
  atom-count distribution for sampling.
- ``structures.frames``: backbone frames from N, CA, C (AF2 Gram-Schmidt) and idealised N, CA, C, O.
- ``structures.protein_io``: PDB / mmCIF / BinaryCIF read and write with biotite.
- ``structures.protein_dataset``: protein data sets (npz or folders), length buckets, grouped split.
- ``structures.atomic``: atomic file writes (temp file + rename).
"""
