"""CHGNet energy, forces and stress of a batch of graphs with ONE backward pass.

``CHGNet.forward`` (chgnet 0.4.2) differentiates the energy twice, once for forces and once for
stress, each with ``create_graph=True`` (kept for training). For inference both come from one
gradient of the total energy E = sum_b E_b:

    F_i = -dE/dr_i          (eV/A)
    sigma_b = (1/V_b) dE/d(epsilon_b) * 160.21766208   (GPa; epsilon_b the strain of graph b)

which is what CHGNet returns, at about half the backward cost. The network itself is CHGNet's
own ``_compute`` with the force/stress branches switched off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from chgnet.graph import CrystalGraph
    from chgnet.model import CHGNet

EV_A3_TO_GPA = 160.21766208


def predict_efs(model: "CHGNet", graphs: Sequence["CrystalGraph"]) -> list[dict[str, np.ndarray]]:
    """Per graph: ``e`` (eV/atom, float), ``f`` [n_atoms, 3] (eV/A), ``s`` [3, 3] (GPa)."""
    from chgnet.model.model import BatchedGraph

    model.eval()
    with torch.enable_grad():
        comp_energy = 0 if model.composition_model is None else model.composition_model(graphs)  # [B]
        g = BatchedGraph.from_graphs(list(graphs), bond_basis_expansion=model.bond_basis_expansion,
                                     angle_basis_expansion=model.angle_basis_expansion, compute_stress=True)
        pred = model._compute(g, compute_force=False, compute_stress=False)
        n_atoms = pred["atoms_per_graph"]  # [B]
        # _compute returns energy per atom for intensive models: total = e * n
        e_total = pred["e"] * n_atoms if model.is_intensive else pred["e"]  # [B]
        grads = torch.autograd.grad(e_total.sum(), [*g.atom_positions, *g.strains])
    b = len(graphs)
    e_pa = (pred["e"] + comp_energy).detach() if model.is_intensive else (
        (pred["e"] + comp_energy) / n_atoms).detach()
    scale = EV_A3_TO_GPA / g.volumes  # [B]
    out = []
    for k in range(b):
        out.append({"e": float(e_pa[k]), "f": (-grads[k]).detach().numpy(),
                    "s": (grads[b + k] * scale[k]).detach().numpy()})
    return out
