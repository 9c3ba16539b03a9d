"""Crystals as data: the KO E.2 token vocabulary and tokenizer (:mod:`.tokens`), input checks (:mod:`.checks`),
tokenised training sets (:mod:`.dataset`) and the tokenizer's round-trip fidelity (:mod:`.roundtrip`)."""
