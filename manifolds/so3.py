"""SO(3) in batched torch: hat/vee, exp/log (stable near 0 and pi), geodesics, Haar and IGSO(3) sampling.

Conventions (shared with MultiFlow's so3_utils): rotation matrices act on column vectors, ``[..., 3, 3]``;
a rotation vector v = theta * axis gives R = Exp(hat(v)) with
hat([x, y, z]) = [[0, -z, y], [z, 0, -x], [-y, x, 0]]. Tangent vectors at R are body-frame
(left-trivialised): the geodesic step from R with velocity v is R Exp(h v).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = [
    "hat", "vee", "exp", "log", "angle", "rotation_angle_between", "geodesic", "geodesic_dist",
    "compose_exp", "log_between", "random_unit_vectors", "uniform", "rotations_at_angle",
    "haar_angle_log_density", "igso3_expansion", "igso3_angle_density", "sample_igso3",
]

_TAYLOR = 1e-4  # |theta| below which Taylor series replace sin(theta)/theta etc.


def hat(v: Tensor) -> Tensor:
    """[..., 3] -> skew matrix [..., 3, 3] with hat(v) w = v x w."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def vee(m: Tensor) -> Tensor:
    """Skew matrix [..., 3, 3] -> [..., 3] (the antisymmetric part is used: vee((M - M^T)/2))."""
    return 0.5 * torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                              m[..., 1, 0] - m[..., 0, 1]], dim=-1)


def exp(v: Tensor) -> Tensor:
    """Rodrigues: Exp(hat(v)) = I + a hat(v) + b hat(v)^2, a = sin(t)/t, b = (1 - cos t)/t^2, t = |v|.

    Taylor branch for t < 1e-4 (a = 1 - t^2/6, b = 1/2 - t^2/24): exact to float64 rounding, and finite gradients
    at v = 0. The nine entries are formed elementwise (no batched 3x3 matmul).
    """
    x, y, z = v.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    t2 = xx + yy + zz  # [...]
    small = t2 < _TAYLOR * _TAYLOR
    ts = torch.where(small, torch.ones_like(t2), t2).sqrt()  # no sqrt(0): finite gradients at v = 0
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(ts) / ts)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(ts)) / (ts * ts))
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    ax, ay, az = a * x, a * y, a * z
    return torch.stack([
        1.0 - b * (yy + zz), bxy - az, bxz + ay,
        bxy + az, 1.0 - b * (xx + zz), byz - ax,
        bxz - ay, byz + ax, 1.0 - b * (xx + yy),
    ], dim=-1).reshape(v.shape[:-1] + (3, 3))


def angle(r: Tensor) -> Tensor:
    """Rotation angle in [0, pi]: atan2(|vee(R - R^T)|, tr R - 1) (accurate at 0 and pi alike)."""
    tr = r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2]
    s = vee(r).norm(dim=-1)  # = sin(theta)
    return torch.atan2(s, 0.5 * (tr - 1.0))


def log(r: Tensor) -> Tensor:
    """Log map SO(3) -> rotation vector [..., 3] with angle in [0, pi].

    Three regimes: theta small (Taylor: v = vee(R) (1 + theta^2/6)); generic (v = theta / sin(theta) vee(R));
    theta near pi (sin(theta) -> 0): the axis comes from the symmetric part (R + R^T)/2 = cos I + (1 - cos) n n^T
    (largest column of n n^T), and its sign from the antisymmetric part vee(R) = sin(theta) n, so that
    Exp(Log(R)) = R holds to rounding everywhere (MultiFlow's near-pi branch drops that sign: docs/results/common.md).
    The near-pi branch runs on the affected rows only.
    """
    w = vee(r)  # sin(th) * n, [..., 3]
    sin_th = w.norm(dim=-1)
    cos_th = 0.5 * (r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1.0)
    th = torch.atan2(sin_th, cos_th)
    small = th < _TAYLOR
    safe = torch.where(small, torch.ones_like(sin_th), sin_th)
    scale = torch.where(small, 1.0 + th * th / 6.0, th / safe)
    v = w * scale[..., None]
    near_pi = th > math.pi - 1e-2
    if bool(near_pi.any()):
        idx = near_pi.nonzero(as_tuple=True)
        v = v.clone()
        v[idx] = _log_near_pi(r[idx], th[idx], cos_th[idx], w[idx])
    return v


def _log_near_pi(r: Tensor, th: Tensor, cos_th: Tensor, w: Tensor) -> Tensor:
    """[K, 3, 3] rotations with theta near pi -> rotation vectors: axis from (R + R^T)/2, sign from vee(R)."""
    sym = 0.5 * (r + r.transpose(-1, -2))
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    nn_t = (sym - cos_th[:, None, None] * eye) / (1.0 - cos_th)[:, None, None]  # n n^T
    k = torch.diagonal(nn_t, dim1=-2, dim2=-1).argmax(-1)  # [K]
    col = nn_t[torch.arange(r.shape[0], device=r.device), :, k]  # n * n_k
    n = col / col.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    sign = torch.sign((n * w).sum(-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return n * (sign * th)[:, None]


def compose_exp(r: Tensor, v: Tensor) -> Tensor:
    """Geodesic step R Exp(v) with body-frame tangent v [..., 3]."""
    return r @ exp(v)


def log_between(r0: Tensor, r1: Tensor) -> Tensor:
    """Body-frame rotation vector from r0 to r1: Log(r0^T r1) (MultiFlow's calc_rot_vf)."""
    return log(r0.transpose(-1, -2) @ r1)


def rotation_angle_between(r0: Tensor, r1: Tensor) -> Tensor:
    """Geodesic distance theta(r0^T r1) in [0, pi] (the angle; MultiFlow's geodesic_dist is sqrt(2) theta)."""
    return angle(r0.transpose(-1, -2) @ r1)


geodesic_dist = rotation_angle_between


def geodesic(r0: Tensor, r1: Tensor, t: Tensor | float) -> Tensor:
    """gamma(t) = r0 Exp(t Log(r0^T r1)); ``t`` broadcasts against the batch shape ``r0.shape[:-2]``."""
    t = torch.as_tensor(t, dtype=r0.dtype, device=r0.device)
    return r0 @ exp(t[..., None] * log_between(r0, r1))


def random_unit_vectors(shape: tuple[int, ...], rng: torch.Generator | None = None,
                        dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Tensor:
    """Uniform points on S^2, [*shape, 3]."""
    g = torch.randn(shape + (3,), generator=rng, dtype=dtype, device=device)
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)


def uniform(shape: tuple[int, ...], rng: torch.Generator | None = None,
            dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Tensor:
    """Haar-uniform rotations [*shape, 3, 3] (normalised Gaussian quaternion -> matrix)."""
    q = torch.randn(shape + (4,), generator=rng, dtype=dtype, device=device)
    return quat_to_matrix(q / q.norm(dim=-1, keepdim=True))


def quat_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternion [..., 4] (w, x, y, z; OpenFold convention) -> rotation matrix [..., 3, 3]."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


def rotations_at_angle(center: Tensor, omega: Tensor, rng: torch.Generator | None = None) -> Tensor:
    """center Exp(omega * n) with n uniform on S^2: [..., 3, 3] (an isotropic draw given the angle)."""
    n = random_unit_vectors(tuple(omega.shape), rng=rng, dtype=center.dtype, device=center.device)
    return center @ exp(omega[..., None] * n)


def haar_angle_log_density(omega: Tensor) -> Tensor:
    """log of the Haar angle density (1 - cos w) / pi on [0, pi]."""
    return torch.log((1.0 - torch.cos(omega)).clamp_min(1e-300)) - math.log(math.pi)


def igso3_expansion(omega: Tensor, sigma: float, l_max: int = 1000) -> Tensor:
    """IGSO(3) density w.r.t. normalised Haar measure, as a function of the angle:
    f(w) = sum_l (2l+1) exp(-l(l+1) sigma^2 / 2) sin((l + 1/2) w) / sin(w / 2), with the limit
    sum_l (2l+1)^2 exp(-l(l+1) sigma^2 / 2) at w = 0 (no +1e-7 regulariser, unlike MultiFlow)."""
    om = omega.to(torch.float64)
    ell = torch.arange(l_max + 1, dtype=torch.float64, device=om.device)
    coef = (2 * ell + 1) * torch.exp(-ell * (ell + 1) * sigma * sigma / 2)  # [L]
    small = om < 1e-6
    oms = torch.where(small, torch.ones_like(om), om)
    series = (coef * torch.sin((ell + 0.5) * oms[..., None])).sum(-1) / torch.sin(oms / 2)
    limit = (coef * (2 * ell + 1)).sum()
    return torch.where(small, limit.expand_as(om), series).to(omega.dtype)


def igso3_angle_density(omega: Tensor, sigma: float, l_max: int = 1000) -> Tensor:
    """Angle density of IGSO(3) on [0, pi]: f(w) (1 - cos w) / pi."""
    return igso3_expansion(omega, sigma, l_max) * (1.0 - torch.cos(omega)) / math.pi


@functools.lru_cache(maxsize=16)
def _igso3_angle_cdf(sigma: float, num_omega: int, l_max: int) -> tuple[Tensor, Tensor]:
    """(grid [num_omega + 1], normalised CDF) of the IGSO(3) angle on w = pi u^3 (trapezoid rule); cached."""
    grid = math.pi * torch.linspace(0, 1, num_omega + 1, dtype=torch.float64) ** 3
    pdf = igso3_angle_density(grid, sigma, l_max).clamp_min(0.0)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64),
                     torch.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * (grid[1:] - grid[:-1]), 0)])
    return grid, cdf / cdf[-1]


def sample_igso3(center: Tensor, sigma: float, rng: torch.Generator | None = None,
                 num_omega: int = 4096, l_max: int = 1000) -> Tensor:
    """R ~ IGSO(3)(center, sigma): angle by inverse CDF on a fine grid (trapezoid CDF, linear
    interpolation; grid w = pi u^3 like MultiFlow, 4096 points; computed once per sigma), axis uniform.
    ``center`` [..., 3, 3]."""
    grid, cdf = _igso3_angle_cdf(float(sigma), num_omega, l_max)
    u = torch.rand(center.shape[:-2], generator=rng, dtype=torch.float64,
                   device=rng.device if rng is not None else "cpu").cpu()  # the CDF lives on the CPU
    idx = torch.searchsorted(cdf, u).clamp(1, num_omega)
    c0, c1 = cdf[idx - 1], cdf[idx]
    w = ((u - c0) / (c1 - c0).clamp_min(1e-300)).clamp(0, 1)
    omega = (grid[idx - 1] + w * (grid[idx] - grid[idx - 1])).to(device=center.device, dtype=center.dtype)
    return rotations_at_angle(center, omega, rng=rng)
