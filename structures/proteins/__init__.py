"""Proteins as data: residue constants in AF2 order (:mod:`.residue_constants`), backbone frames (:mod:`.frames`),
PDB / mmCIF / FASTA reading and writing (:mod:`.io`), training data sets and chain filters (:mod:`.dataset`) and
sequence-similarity grouping for splits (:mod:`.similarity`)."""
