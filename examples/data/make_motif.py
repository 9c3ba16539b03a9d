"""Writes ``examples/data/1ctf_A.pdb``, the motif source of ``examples/protein_motif.toml``: chain 1CTF_A of the
embedded backbone set (``structures.data.load_proteins()``; the C-terminal domain of ribosomal protein L7/L12, 68
residues, author numbers 7-74, backbone atoms N, CA, C, O only), written with the repository's own PDB writer
(:func:`structures.proteins.io.write_structure`). Rerun it to regenerate the file:

    .venv/bin/python examples/data/make_motif.py
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from structures.data import load_proteins
from structures.proteins.io import BackboneChain, write_structure

NAME = "1CTF_A"


def main(out: str | Path | None = None) -> Path:
    """Write the chain ``NAME`` (``[L, 4, 3]`` backbone, its native sequence, residues numbered from its
    ``start_resnum``) as chain A of ``out`` (default ``1ctf_A.pdb`` beside this script)."""
    chain = next(c for c in load_proteins() if c.name == NAME)
    backbone = BackboneChain.from_coords(np.asarray(chain.coords), chain.sequence, name=NAME)
    numbered = replace(backbone, res_ids=chain.start_resnum + np.arange(len(chain.sequence)))
    return write_structure(Path(__file__).with_name("1ctf_A.pdb") if out is None else Path(out), numbered)


if __name__ == "__main__":
    print(main())
