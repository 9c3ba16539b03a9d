"""vMF path on unit quaternions for SO(3) jumps (GM section 9 / app. G.1; multijump's VMFPath).

p_t(q | q1) = vMF_4(q; q1, k_t) + vMF_4(-q; q1, k_t) = C(k) 2 cosh(k c), c = |q . q1| = cos(w / 2), where w is
the rotation angle of z^T x, C(k) = k / (4 pi^2 I_1(k)) (density w.r.t. the area of S^3), and
k_t = k_min + (k_max - k_min + 1)^(a t) - 1 (k_min = 0.01, k_max = 200, a = 4).

With s = 1 - c = 2 sin^2(w / 4) (accurate at w -> 0) and A(k) = 2/k - I_0(k)/I_1(k):

* d/dt log p_t = k'_t g,   g = A + c tanh(k c) = (A + 1) - s - 2 c / (exp(2 k c) + 1)
  (written so that nothing cancels at k ~ 1e9, where A + 1 ~ 3/(2k) and s ~ 1/k);
* intensity lambda_t(x) = [-d/dt log p_t]_+ = k'_t [-g]_+  (closed form, no autograd);
* target J_t(y) proportional to [d/dt p_t(y)]_+. It depends on y only through s, and under Haar measure s has
  density proportional to sqrt(s (2 - s)), so the target angle has density
  f(s) ~ sqrt(s (2 - s)) e^{-k s} B(s) on [0, s*], B(s) = (A + 1 - s) + e^{-2 k (1 - s)} (A - 1 + s) = 2 e^{-k c} (A cosh + c sinh),
  B decreasing with root s*. Exact sampler: propose u ~ Beta(3/2, 1) (u = V^(2/3)), s = s* u, and accept with
  probability sqrt((2 - s)/2) e^{-k s} B(s) / B(0) <= 1; the axis is uniform. Fully batched.
* flow solution (so that a flow and the jump solve the KFE of the *same* path, GM Prop. 3): the path is isotropic about
  z, so a geodesic radial flow suffices. With the angle density f_t(s) = 8 pi C(k) cosh(k (1 - s)) sqrt(s (2 - s)) on
  [0, 1] and its CDF F_t, the 1-D continuity equation gives ds/dt = -d/dt F_t(s) / f_t(s), with
  d/dt F_t(s) = k'_t int_0^s f_t g = -k'_t int_s^1 f_t g (mass conservation). Both integrals are evaluated as ratios
  f_t(s')/f_t(s) by 32-point Gauss-Legendre on the window where the integrand is above e^-40 (left form for k s < 5,
  right tail form otherwise). Body-frame velocity: u = Log(z^T x) (d w/dt) / w, d w/dt = 2 (ds/dt) / sin(w / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from manifolds import so3
from manifolds.base import ProbabilityPath, TimeLike, as_time
from manifolds.spaces import SO3

__all__ = ["VMFSchedule", "VMFSO3Path", "one_plus_a", "log_c"]

_LOG_4PI2 = math.log(4.0 * math.pi ** 2)
_BIG_K = 1e3
_GL_NODES, _GL_WEIGHTS = (torch.from_numpy(a) for a in __import__("numpy").polynomial.legendre.leggauss(32))


@dataclass(frozen=True)
class VMFSchedule:
    """k_t = k_min + (k_max - k_min + 1)^(alpha t) - 1 and its derivative."""

    kappa_min: float = 0.01
    kappa_max: float = 200.0
    alpha: float = 4.0

    def __call__(self, t: Tensor) -> tuple[Tensor, Tensor]:
        base = math.log(self.kappa_max - self.kappa_min + 1.0)
        e = torch.exp(self.alpha * t * base)
        return self.kappa_min + torch.expm1(self.alpha * t * base), self.alpha * base * e


def one_plus_a(k: Tensor) -> Tensor:
    """1 + 2/k - I_0(k)/I_1(k) > 0, accurate for all k > 0 (asymptotic series above k = 1e3)."""
    ks = k.clamp_max(_BIG_K)
    exact = 1.0 + 2.0 / ks - torch.special.i0e(ks) / torch.special.i1e(ks)
    kb = k.clamp_min(_BIG_K)
    # I0/I1 = 1 + 1/(2k) + 3/(8k^2) + 3/(8k^3) + 63/(128 k^4) + O(k^-5)
    asym = 1.5 / kb - 3.0 / (8 * kb ** 2) - 3.0 / (8 * kb ** 3) - 63.0 / (128 * kb ** 4)
    return torch.where(k > _BIG_K, asym, exact)


def log_c(k: Tensor) -> Tensor:
    """log C(k) = log k - log(4 pi^2) - k - log(i1e(k))."""
    return torch.log(k) - _LOG_4PI2 - k - torch.log(torch.special.i1e(k))


@dataclass(frozen=True)
class VMFSO3Path(ProbabilityPath):
    """Symmetrised vMF path on S^3 viewed on SO(3); ``x``, ``z`` are [B, *elems, 3, 3]."""

    schedule: VMFSchedule = VMFSchedule()
    space = SO3()

    def _k(self, t: TimeLike, x: Tensor) -> tuple[Tensor, Tensor]:
        t = as_time(t, x.shape[0], x)
        return self.schedule(t.reshape(t.shape + (1,) * (x.ndim - 3)))

    @staticmethod
    def half_gap(x: Tensor, z: Tensor) -> Tensor:
        """s = 1 - |q_x . q_z| = 2 sin^2(w/4), w the angle of z^T x, [B, *elems]."""
        w = so3.rotation_angle_between(z, x)
        return 2.0 * torch.sin(0.25 * w) ** 2

    @staticmethod
    def _g(k: Tensor, s: Tensor) -> Tensor:
        c = 1.0 - s
        return one_plus_a(k) - s - 2.0 * c / (torch.exp(2.0 * k * c) + 1.0)

    def sample_source(self, z: Tensor, rng: torch.Generator | None = None) -> Tensor:
        """p_0 = vMF(k_min = 0.01) around z: nearly, not exactly, Haar."""
        return self.sample(z, 0.0, rng)

    def element_log_prob_s(self, s: Tensor, k: Tensor) -> Tensor:
        """log p_t as a function of s: log C + k c + log(1 + e^{-2 k c}) + log 2 - log 2 (S^3 area measure)."""
        c = 1.0 - s
        return log_c(k) + k * c + torch.log1p(torch.exp(-2.0 * k * c))

    def element_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """log p_t(x | z) w.r.t. the area measure of S^3 (one hemisphere = SO(3), total mass 1), [B, *elems].

        Never underflows (multijump's log(exp(a) + exp(b)) gives -inf once both terms underflow)."""
        k, _ = self._k(t, x)
        return self.element_log_prob_s(self.half_gap(x, z), k)

    def log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        return self.element_log_prob(x, z, t).reshape(x.shape[0], -1).sum(1)

    def element_dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        k, dk = self._k(t, x)
        return dk * self._g(k, self.half_gap(x, z))

    def dt_log_prob(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        return self.element_dt_log_prob(x, z, t).reshape(x.shape[0], -1).sum(1)

    def jump_intensity(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """lambda_t(x | z) = k'_t [-g]_+, [B, *elems] (closed form)."""
        return (-self.element_dt_log_prob(x, z, t)).clamp_min(0.0)

    def jump_density_unnormalised(self, y: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """[d/dt p_t(y | z)]_+ = p_t k'_t [g]_+ (w.r.t. the S^3 area measure), [B, *elems]."""
        k, dk = self._k(t, y)
        s = self.half_gap(y, z)
        return torch.exp(self.element_log_prob_s(s, k)) * dk * self._g(k, s).clamp_min(0.0)

    def _b(self, k: Tensor, s: Tensor) -> Tensor:
        a1 = one_plus_a(k)
        return (a1 - s) + torch.exp(-2.0 * k * (1.0 - s)) * (a1 - 2.0 + s)

    def root_s(self, k: Tensor, iters: int = 64) -> Tensor:
        """s* in (0, 1): the root of B (equivalently of g), by bisection."""
        lo = torch.zeros_like(k)
        hi = torch.ones_like(k)
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            pos = self._b(k, mid) > 0
            lo = torch.where(pos, mid, lo)
            hi = torch.where(pos, hi, mid)
        return 0.5 * (lo + hi)

    def _sample_s(self, k: Tensor, rng: torch.Generator | None, density: str) -> Tensor:
        """Batched rejection sampling of s for the path ("path") or the jump target ("jump")."""
        out = torch.empty_like(k)
        pending = torch.ones_like(k, dtype=torch.bool)
        s_star = self.root_s(k) if density == "jump" else None
        while bool(pending.any()):
            kp = k[pending]
            n = kp.shape[0]
            u1 = torch.rand(n, generator=rng, dtype=k.dtype, device=k.device)
            u2 = torch.rand(n, generator=rng, dtype=k.dtype, device=k.device)
            if density == "jump":
                sp = s_star[pending]
                s = sp * u1 ** (2.0 / 3.0)
                b0 = self._b(kp, torch.zeros_like(kp))
                acc = torch.sqrt((2.0 - s) / 2.0) * torch.exp(-kp * s) * self._b(kp, s).clamp_min(0.0) / b0
            else:
                # p_t in s: sqrt(s (2 - s)) cosh(k (1 - s)). Small k: Haar proposal, accept cosh(k c)/cosh(k).
                # Large k: s ~ Gamma(3/2, rate k) = chi^2_3 / (2k), accept sqrt((2-s)/2) (1 + e^{-2k(1-s)}) / 2 on s <= 1.
                g = torch.randn(n, 3, generator=rng, dtype=k.dtype, device=k.device)
                big = kp > 1.0
                s_gamma = (g * g).sum(-1) / (2.0 * kp)
                # Haar: s = 1 - |w| with w the first coordinate of a uniform point on S^3
                q = torch.randn(n, 4, generator=rng, dtype=k.dtype, device=k.device)
                s_haar = 1.0 - (q[:, 0].abs() / q.norm(dim=-1))
                s = torch.where(big, s_gamma, s_haar)
                sc = s.clamp(0.0, 1.0)
                acc_big = torch.sqrt((2.0 - sc) / 2.0) * (1.0 + torch.exp(-2.0 * kp * (1.0 - sc))) / 2.0
                acc_big = torch.where(s <= 1.0, acc_big, torch.zeros_like(acc_big))
                acc_small = torch.exp(-kp * sc) * (1.0 + torch.exp(-2.0 * kp * (1.0 - sc))) / (1.0 + torch.exp(-2.0 * kp))
                acc = torch.where(big, acc_big, acc_small)
            ok = u2 < acc
            idx = pending.nonzero(as_tuple=True)
            sel = tuple(i[ok] for i in idx)
            out[sel] = s[ok]
            pending[sel] = False
        return out

    @staticmethod
    def _rotate_by_s(z: Tensor, s: Tensor, rng: torch.Generator | None) -> Tensor:
        w = 4.0 * torch.asin(torch.sqrt((s / 2.0).clamp(0.0, 1.0)))  # rotation angle in [0, pi]
        return so3.rotations_at_angle(z, w, rng=rng)

    def sample(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        k, _ = self._k(t, z)
        k = k.expand(z.shape[:-2]).contiguous()
        return self._rotate_by_s(z, self._sample_s(k, rng, "path"), rng)

    def sample_jump_target(self, z: Tensor, t: TimeLike, rng: torch.Generator | None = None) -> Tensor:
        """y ~ J_t(. | z), exact and batched: angle by rejection from its 1-D density, axis uniform."""
        k, _ = self._k(t, z)
        k = k.expand(z.shape[:-2]).contiguous()
        return self._rotate_by_s(z, self._sample_s(k, rng, "jump"), rng)

    # --- flow solution ----------------------------------------------------------------------------
    def _log_f_ratio(self, k: Tensor, s_num: Tensor, s_den: Tensor) -> Tensor:
        """log f_t(s_num) / f_t(s_den) for the angle density f ~ cosh(k (1 - s)) sqrt(s (2 - s))."""
        def log_f(s: Tensor) -> Tensor:
            c = 1.0 - s
            return k * c + torch.log1p(torch.exp(-2.0 * k * c)) + 0.5 * torch.log((s * (2.0 - s)).clamp_min(1e-300))
        return log_f(s_num) - log_f(s_den)

    def radial_speed(self, k: Tensor, dk: Tensor, s: Tensor) -> Tensor:
        """ds/dt of the radial flow, same shape as s (k, dk broadcast). Each point uses one of the two quadratures."""
        k, dk, s = (a.contiguous() for a in torch.broadcast_tensors(k, dk, s))
        v = 0.5 * (_GL_NODES.to(s) + 1.0)  # [Q] in [0, 1]
        wv = 0.5 * _GL_WEIGHTS.to(s)
        sc = s.clamp(1e-300, 1.0)
        left = k * sc < 5.0
        out = torch.empty_like(sc)
        # left form: -k' int_0^b f g / f(s), s' = b v^2 (removes the sqrt(s') endpoint singularity), b = min(s, 40/k)
        kl, sl0 = k[left], sc[left]
        b = torch.minimum(sl0, 40.0 / kl)
        sl = b[:, None] * v * v  # [K, Q]
        ratio = torch.exp(self._log_f_ratio(kl[:, None], sl, sl0[:, None])) * self._g(kl[:, None], sl)
        out[left] = -dk[left] * (wv * 2.0 * b[:, None] * v * ratio).sum(-1)
        # right tail form: k' int_s^e f g / f(s), e = min(1, s + 40/k)
        right = ~left
        kr, sr0 = k[right], sc[right]
        width = torch.minimum(torch.ones_like(sr0), sr0 + 40.0 / kr) - sr0
        sr = sr0[:, None] + width[:, None] * v
        ratio = torch.exp(self._log_f_ratio(kr[:, None], sr, sr0[:, None])) * self._g(kr[:, None], sr)
        out[right] = dk[right] * (width[:, None] * wv * ratio).sum(-1)
        return out

    def velocity(self, x: Tensor, z: Tensor, t: TimeLike) -> Tensor:
        """Body-frame radial velocity of the flow solving the KFE for this path, [B, *elems, 3]."""
        k, dk = self._k(t, x)
        log_zx = so3.log_between(z, x)  # x = z Exp(log_zx); the flow moves along this geodesic
        w = log_zx.norm(dim=-1)
        s = 2.0 * torch.sin(0.25 * w) ** 2
        ds = self.radial_speed(k, dk, s)
        ws = w.clamp_min(1e-12)
        rate = 2.0 * ds / (torch.sin(0.5 * ws) * ws)  # (dw/dt) / w
        # log_zx is a body vector at z; the same axis is the body-frame direction at x (rotation about a fixed axis)
        return rate[..., None] * log_zx
