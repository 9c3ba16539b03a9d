"""Crystals as data: the 878-token vocabulary of KO appendix E.2 (:mod:`.vocabulary`), encoding (:mod:`.tokens`,
which also re-exports the vocabulary and decoding names) and decoding with typed failures (:mod:`.decoding`), input
checks (:mod:`.checks`), tokenised training sets (:mod:`.dataset`) and the tokenizer's round-trip fidelity
(:mod:`.roundtrip`)."""
