"""Networks: the permutation-invariant crystal DiT (KO appendix E.2) and the protein network
(:mod:`pipeline.networks.protein`, MultiFlow's FlowModel behind typed dataclasses)."""
