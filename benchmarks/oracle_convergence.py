"""Benchmark: exact-oracle error vs number of steps (10, 20, 50, 100, 200) on the R^1 mixture data, for flow-Euler,
flow-Heun, jump-Euler and the flow + jump Markov superposition (Euler), and the fitted convergence orders.

Data: z in {-2, 0.5, 3} with weights (0.2, 0.5, 0.3); CondOT path x_t = (1 - t) x_0 + t z; uniform grid on
[0, t_max], t_max = 0.99. Error: W1 between the law the sampler produces at t_max and the exact marginal p_{t_max}
(GM Prop. 1 with the exact posterior). Both laws are computed without Monte-Carlo noise:

* flows (deterministic, monotone in 1-D): n stratified source quantiles x_0 = Phi^-1((i - 1/2)/n) are pushed through
  the sampler; W1 = mean_i |x_(i) - F^-1((i - 1/2)/n)| against the exact quantiles of p_{t_max};
* jump and superposition: the law of the Euler chain itself is propagated on a fine grid of cells (stay with probability
  exp(-h Lambda(x)), else move the mass to sum_m r_m(x)/Lambda(x) J_t(. | z_m), whose cell masses are exact via the
  closed-form CDF of J_t; the flow part maps cell edges with x + h u(x) and remaps the CDF). This is exactly the
  law of the particle sampler in manifolds.samplers.euler up to quadrature on the grid (floor reported).

Prints one JSON object as its last line: `order` {flow_euler, flow_heun, jump_euler, superposition} (least-squares
slope of -log error vs log steps), `errors` per method and step count, and the grid / quantisation floors.
Usage: python benchmarks/oracle_convergence.py [--n 100000] [--cells 100000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from manifolds import samplers  # noqa: E402
from manifolds.base import expand_pairs  # noqa: E402
from manifolds.generators import DensityJumpGenerator, FlowGenerator  # noqa: E402
from manifolds.oracle import ExactOracle, gaussian_mixture_cdf  # noqa: E402
from manifolds.paths import AffineGaussianPath  # noqa: E402
from manifolds.paths.gaussian import _roots  # noqa: E402
from manifolds.truncated import quadratic_normal_mass  # noqa: E402

STEPS = (10, 20, 50, 100, 200)
DATA = [-2.0, 0.5, 3.0]
PRIOR = [0.2, 0.5, 0.3]
T_MAX = 0.99
LO, HI = -7.0, 7.0


def mixture_quantiles(u: torch.Tensor, cdf) -> torch.Tensor:
    """F^-1(u) by bisection (F continuous, increasing)."""
    a, b = torch.full_like(u, LO), torch.full_like(u, HI)
    for _ in range(70):
        mid = 0.5 * (a + b)
        below = cdf(mid) < u
        a, b = torch.where(below, mid, a), torch.where(below, b, mid)
    return 0.5 * (a + b)


def flow_errors(oracle: ExactOracle, flow: FlowGenerator, n: int) -> tuple[dict, dict, float]:
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x0 = (math.sqrt(2.0) * torch.erfinv(2 * u - 1))[:, None]
    cdf = gaussian_mixture_cdf(torch.tensor(DATA) * T_MAX, 1 - T_MAX, torch.tensor(PRIOR))
    q = mixture_quantiles(u, cdf)
    err_e, err_h = {}, {}
    for steps in STEPS:
        grid = samplers.time_grid(steps, 0.0, T_MAX)
        xe = samplers.euler(x0, grid, oracle.step_fn(flow))
        xh = samplers.heun(x0, grid, oracle.velocity_fn(flow), flow.move)
        err_e[steps] = float((torch.sort(xe[:, 0]).values - q).abs().mean())
        err_h[steps] = float((torch.sort(xh[:, 0]).values - q).abs().mean())
    # floor: the exact conditional flow maps quantiles to quantiles in 1-D; our quantiles are exact to bisection
    return err_e, err_h, 0.0


class GridLaw:
    """The law of the Euler jump / superposition chain on cells [e_i, e_{i+1}] (uniform density inside a cell)."""

    def __init__(self, oracle: ExactOracle, path: AffineGaussianPath, cells: int) -> None:
        self.oracle, self.path = oracle, path
        self.edges = torch.linspace(LO, HI, cells + 1, dtype=torch.float64)
        self.centres = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.support = oracle.support  # [M, 1]
        self.prior = torch.tensor(PRIOR, dtype=torch.float64)

    def initial(self) -> torch.Tensor:
        cdf = 0.5 * torch.erfc(-self.edges / math.sqrt(2.0))
        return cdf[1:] - cdf[:-1]

    def jump_cell_masses(self, t: float) -> torch.Tensor:
        """[M, cells]: exact mass of J_t(. | z_m) in every cell (closed-form CDF in the standardised coordinate)."""
        out = []
        a, s, da, ds = t, 1.0 - t, 1.0, -1.0
        for z in self.support[:, 0].tolist():
            r, b = torch.tensor(-ds), torch.tensor(da * z)
            lo, hi = _roots(r, b)
            ue = (self.edges - a * z) / s
            ue = torch.minimum(torch.maximum(ue, lo), hi)
            c = quadratic_normal_mass(r, b, -r, lo.expand_as(ue), ue)
            m = c[1:] - c[:-1]
            out.append(m / m.sum())
        return torch.stack(out)

    def rates(self, at: torch.Tensor, weights: torch.Tensor, t: float) -> torch.Tensor:
        """[cells, M]: w_m(x) lambda_t(at | z_m) with the posterior taken at the cells' centres (as the sampler does)."""
        xe, ze, te = expand_pairs(at[:, None], self.support, t)
        lam = self.path.jump_intensity(xe, ze, te).reshape(at.shape[0], -1)
        return weights * lam

    def jump(self, mass: torch.Tensor, rates: torch.Tensor, t: float, h: float) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (mass that stays where it is, mass that lands on the grid by jumping)."""
        total = rates.sum(1)
        leave = -torch.expm1(-h * total)
        frac = torch.where(total[:, None] > 0, rates / total.clamp_min(1e-300)[:, None], 0.0)
        moved = (mass * leave)[:, None] * frac  # [cells, M]
        landed = (moved.sum(0)[:, None] * self.jump_cell_masses(t)).sum(0)
        return mass * (1 - leave), landed

    def remap(self, mass: torch.Tensor, new_edges: torch.Tensor) -> torch.Tensor:
        """Mass uniform on [new_edges_i, new_edges_{i+1}] (monotone) -> cell masses on the fixed grid."""
        cum = torch.cat([torch.zeros(1, dtype=mass.dtype), torch.cumsum(mass, 0)])
        c = torch.from_numpy(__import__("numpy").interp(self.edges.numpy(), new_edges.numpy(), cum.numpy()))
        return c[1:] - c[:-1]

    def w1(self, mass: torch.Tensor) -> float:
        cdf = gaussian_mixture_cdf(torch.tensor(DATA) * T_MAX, 1 - T_MAX, self.prior)
        # both CDFs on a refined grid: the grid law's CDF is linear inside a cell
        fine = torch.linspace(LO, HI, 8 * (self.edges.numel() - 1) + 1, dtype=torch.float64)
        cum = torch.cat([torch.zeros(1, dtype=mass.dtype), torch.cumsum(mass, 0)])
        fg = torch.from_numpy(__import__("numpy").interp(fine.numpy(), self.edges.numpy(), cum.numpy()))
        return float(torch.trapezoid((fg - cdf(fine)).abs(), fine))

    def run(self, steps: int, flow: FlowGenerator | None) -> float:
        mass = self.initial()
        grid = samplers.time_grid(steps, 0.0, T_MAX)
        for t0, t1 in zip(grid[:-1], grid[1:]):
            h = t1 - t0
            weights = self.oracle.posterior(self.centres[:, None], t0)  # [cells, M]
            if flow is None:
                stay, landed = self.jump(mass, self.rates(self.centres, weights, t0), t0, h)
                mass = stay + landed
            else:  # Superposition((flow, jump)) with weights 1/2, 1/2: flow step, then jump step at the moved points
                we = self.oracle.posterior(self.edges[:, None], t0)
                new_edges = self.edges + 0.5 * h * flow.marginal_velocity(self.edges[:, None], t0, self.support, we)[:, 0]
                new_centres = self.centres + 0.5 * h * flow.marginal_velocity(self.centres[:, None], t0, self.support,
                                                                                weights)[:, 0]
                stay, landed = self.jump(mass, self.rates(new_centres, weights, t0), t0, 0.5 * h)
                mass = self.remap(stay, new_edges) + landed
        return self.w1(mass)


def fit_order(errors: dict) -> float:
    xs = torch.log(torch.tensor(list(errors.keys()), dtype=torch.float64))
    ys = torch.log(torch.tensor(list(errors.values()), dtype=torch.float64))
    xm, ym = xs.mean(), ys.mean()
    return float(-((xs - xm) * (ys - ym)).sum() / ((xs - xm) ** 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="stratified particles for the flows")
    ap.add_argument("--cells", type=int, default=100_000, help="grid cells for the jump / superposition laws")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    start = time.perf_counter()
    path = AffineGaussianPath()
    flow, jump = FlowGenerator(path), DensityJumpGenerator(path)
    oracle = ExactOracle(path, torch.tensor(DATA)[:, None], torch.tensor(PRIOR))
    err_fe, err_fh, _ = flow_errors(oracle, flow, args.n)
    law = GridLaw(oracle, path, args.cells)
    err_j = {s: law.run(s, None) for s in STEPS}
    err_s = {s: law.run(s, flow) for s in STEPS}
    # quadrature floor of the grid law: the exact p_{t_max} binned on the same cells
    floor = law.w1(torch.from_numpy(__import__("numpy").diff(
        gaussian_mixture_cdf(torch.tensor(DATA) * T_MAX, 1 - T_MAX, torch.tensor(PRIOR))(law.edges).numpy())))
    errors = {"flow_euler": err_fe, "flow_heun": err_fh, "jump_euler": err_j, "superposition": err_s}
    result = {
        "benchmark": "oracle_convergence",
        "data": {"z": DATA, "weights": PRIOR, "path": "CondOT", "t_max": T_MAX},
        "steps": list(STEPS),
        "order": {k: fit_order(v) for k, v in errors.items()},
        "local_order": {k: {f"{a}-{b}": math.log(v[a] / v[b]) / math.log(b / a) for a, b in zip(STEPS[:-1], STEPS[1:])}
                        for k, v in errors.items()},
        "errors": {k: {str(s): e for s, e in v.items()} for k, v in errors.items()},
        "grid_floor_w1": floor,
        "flow_particles": args.n,
        "grid_cells": args.cells,
        "seconds": time.perf_counter() - start,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
