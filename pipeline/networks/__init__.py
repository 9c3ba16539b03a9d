"""Networks: the permutation-invariant crystal DiT (KO appendix E.2)."""
