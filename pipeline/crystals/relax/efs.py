"""CHGNet energy, forces and stress of a batch of graphs with ONE backward pass.

``CHGNet.forward`` (chgnet 0.4.2) differentiates the energy twice, once for forces and once for
stress, each with ``create_graph=True`` (kept for training). For inference both come from one
gradient of the total energy E = sum_b E_b:

    F_i = -dE/dr_i          (eV/A)
    sigma_b = (1/V_b) dE/d(epsilon_b) * 160.21766208   (GPa; epsilon_b the strain of graph b)

which is what CHGNet returns, at about half the backward cost. The network itself is CHGNet's
own ``_compute`` with the force/stress branches switched off.

A graph's numbers do not depend on the graphs batched with it, so a relax in shards equals a serial one byte for
byte (checked bitwise by tests/pipeline/crystals/test_relax.py). CHGNet's two scalar heads, the composition
reference energy (Linear(94 -> 1) over [B, 94]) and the last layer of the site-energy MLP (Linear(h -> 1) over
[atoms in the batch, h]), are matrix-vector products whose BLAS kernel, and so the rounding of a row, changes with
the number of rows: a structure's energy moved by an ulp with its batch mates (3 of 1,000 relaxed crystals). While
:func:`predict_efs` runs, every ``Linear(., 1)`` of the model computes each row on its own,
``sum_k x_k w_k + b`` (:func:`rowwise_scalar_heads`; the same value up to rounding).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

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
        with rowwise_scalar_heads(model):
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


@contextlib.contextmanager
def rowwise_scalar_heads(model: torch.nn.Module) -> Iterator[None]:
    """While in the block, every ``torch.nn.Linear`` of ``model`` with one output computes its rows one by one,
    ``y_i = sum_k x_ik w_k + b`` (an elementwise product and a sum over the last axis), so that row i does not
    depend on the other rows (module docstring); the hooks are removed on exit."""

    def rowwise(layer: torch.nn.Linear, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> torch.Tensor:
        y = (inputs[0] * layer.weight[0]).sum(-1, keepdim=True)  # [..., 1]
        return y if layer.bias is None else y + layer.bias

    handles = [m.register_forward_hook(rowwise) for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
