"""Held-out errors of a property predictor per noise level: what its record states and what guidance relies on.

For each held-out crystal x_1 and each time bin (0-0.2, ..., 0.8-1.0, and t = 1: the clean structure), ``draws``
times t ~ U[bin] and x_t ~ p_t(. | x_1) on the generator's path (fixed seeds: the same numbers on every run), the
predictor's N(mean, std^2) is compared with the true value y:

* ``mae``, ``rmse``: of the mean, per property (property units);
* ``within_1sigma``, ``within_2sigma``: the share of |y - mean| <= k std (a calibrated Gaussian: 0.683 / 0.954);
  guidance uses the predicted std, so an over-confident predictor over-steers;
* ``nll``: the Gaussian negative log-likelihood per property;
* ``baseline``: the MAE / RMSE of predicting the training mean (what any predictor can do at t = 0, where every
  token is masked).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from pipeline.crystals.flow import CoordinatePath, trim_padding
from pipeline.crystals.predictor.data import noisy_tokens
from pipeline.crystals.predictor.network import CrystalPredictor

__all__ = ["T_BINS", "bin_labels", "heldout_errors"]

#: the noise levels of the held-out table: [low, high) bins of t, and (1, 1) for the clean structures
T_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.0), (1.0, 1.0))


def bin_labels() -> list[str]:
    return [f"{lo:.1f}-{hi:.1f}" if hi > lo else "1 (clean)" for lo, hi in T_BINS]


@torch.no_grad()
def _predict_bin(net: CrystalPredictor, tokens: Tensor, t_range: tuple[float, float], path: tuple[str, CoordinatePath],
                 g: torch.Generator, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """Mean and std ``[N, P]`` at one draw of t ~ U[t_range) per crystal and x_t on the path."""
    lo, hi = t_range
    means, stds = [], []
    for i in range(0, tokens.shape[0], chunk):
        x1 = trim_padding(tokens[i:i + chunk])
        t = lo + (hi - lo) * torch.rand(x1.shape[0], generator=g)
        m, s = net(noisy_tokens(x1, t, path[0], path[1], g), t)
        means.append(m.double())
        stds.append(s.double())
    return torch.cat(means), torch.cat(stds)


def heldout_errors(net: CrystalPredictor, tokens: Tensor, targets: Tensor, properties: Sequence[str],
                   path: tuple[str, CoordinatePath], baseline: Tensor, draws: int = 4, seed: int = 0) -> dict[str, Any]:
    """The held-out table (module docstring) of ``net`` on ``tokens`` ``[N, 6 + 4A]`` with true ``targets``
    ``[N, P]``; ``path`` = (scheduler, coordinate path) of the generator; ``baseline`` ``[P]`` the training mean."""
    was_training = net.training
    net.eval()
    y = targets.double()
    stats: dict[str, dict[str, list[float]]] = {p: {k: [] for k in ("mae", "rmse", "within_1sigma", "within_2sigma",
                                                                  "nll")} for p in properties}
    for b, t_range in enumerate(T_BINS):
        g = torch.Generator().manual_seed(seed * 7919 + b)
        n_draws = 1 if t_range[0] == t_range[1] and not path[1].metric else draws  # t = 1: x_t = x_1
        err, z, nll = [], [], []
        for _ in range(n_draws):
            m, s = _predict_bin(net, tokens, t_range, path, g)
            e = m - y  # [N, P]
            err.append(e)
            z.append(e.abs() / s)
            nll.append(0.5 * (e / s) ** 2 + torch.log(s) + 0.5 * math.log(2 * math.pi))
        e_all, z_all, nll_all = torch.cat(err), torch.cat(z), torch.cat(nll)
        for j, p in enumerate(properties):
            row = stats[p]
            row["mae"].append(float(e_all[:, j].abs().mean()))
            row["rmse"].append(float(e_all[:, j].pow(2).mean().sqrt()))
            row["within_1sigma"].append(float((z_all[:, j] <= 1).double().mean()))
            row["within_2sigma"].append(float((z_all[:, j] <= 2).double().mean()))
            row["nll"].append(float(nll_all[:, j].mean()))
    base = y - baseline.double()[None]
    net.train(was_training)
    return {"t_bins": bin_labels(), "n_heldout": int(y.shape[0]), "draws": draws, "seed": seed,
            "properties": stats,
            "baseline": {p: {"what": "the training mean", "mae": float(base[:, j].abs().mean()),
                             "rmse": float(base[:, j].pow(2).mean().sqrt())} for j, p in enumerate(properties)}}


def mean_nll(table: dict[str, Any]) -> float:
    """The held-out NLL averaged over time bins and properties (the training curve's held-out value)."""
    values = [v for row in table["properties"].values() for v in row["nll"]]
    return float(sum(values) / len(values))


def format_table(table: dict[str, Any]) -> str:
    """A Markdown table: MAE (RMSE) and 1-/2-sigma coverage per time bin and property, and the mean baseline."""
    lines = ["| t | " + " | ".join(f"{p} MAE (RMSE) | {p} in 1σ / 2σ" for p in table["properties"]) + " |",
             "|---|" + "---|---|" * len(table["properties"])]
    for i, label in enumerate(table["t_bins"]):
        cells = []
        for row in table["properties"].values():
            cells += [f"{row['mae'][i]:.3f} ({row['rmse'][i]:.3f})",
                      f"{row['within_1sigma'][i]:.2f} / {row['within_2sigma'][i]:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    base = [f"{b['mae']:.3f} ({b['rmse']:.3f}) | -" for b in table["baseline"].values()]
    lines.append("| predict the mean | " + " | ".join(base) + " |")
    return "\n".join(lines)
