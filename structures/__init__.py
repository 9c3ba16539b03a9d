"""genmatch.structures: proteins and crystals as data (files, frames, tokens, data sets). Knows no models.

Rooms (import what you need; nothing heavy is imported here):

- ``structures.crystals``: the KO E.2 token vocabulary, encode / decode with typed failures, input checks,
  tokenised training sets, round-trip fidelity.
- ``structures.proteins``: residue constants (AF2 order), backbone frames, PDB / mmCIF / FASTA files, training
  data sets and chain filters.
- Shared: ``structures.data`` (the data root: ``$GENMATCH_DATA`` or the embedded copy in ``structures/embedded``;
  named data sets, CDVAE CSVs, the protein npz), ``structures.errors`` (:class:`~structures.errors.InputError`),
  ``structures.validate`` (argument checks naming the argument), ``structures.atomic`` (atomic writes),
  ``structures.cache`` (the on-disk cache of derived data), ``structures.version``.
"""
