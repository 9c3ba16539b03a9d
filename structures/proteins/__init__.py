"""Proteins as data: residue constants in AF2 order (:mod:`.residue_constants`), backbone frames (:mod:`.frames`),
PDB / mmCIF reading and writing (:mod:`.io`) and training data sets (:mod:`.dataset`)."""
