"""Fast 3x3 matrix exponential / logarithm / Frechet derivative for ASE's FrechetCellFilter.

``FrechetCellFilter`` calls ``scipy.linalg.expm``, ``logm`` and ``expm_frechet`` on 3x3
(deformation-gradient) matrices several times per step and structure; scipy's general-purpose
routines cost ~0.3-1.6 ms per call for such tiny inputs, which is a large share of a batched
CHGNet step. Deformation gradients in a relaxation stay near the identity, where plain series are
exact to machine precision:

    expm(A)       = (sum_{k<=K} (A/2^s)^k / k!)^(2^s)                 (scaling and squaring, ||A/2^s||_1 <= 1/2)
    L(A, E)       = [expm([[A, E], [0, A]])]_{12}                      (Frechet derivative, block form)
    logm(F)       = 2^j log(I + Y),  I + Y = F^(1/2^j)  (Denman-Beavers square roots until ||Y||_1 <= 1/4)
    log(I + Y)    = sum_{k>=1} (-1)^(k+1) Y^k / k

Tests check them against scipy to 1e-12. The filter instance gets these as its ``expm``,
``logm`` and ``expm_frechet`` attributes (the hooks ASE itself uses), nothing else changes.
"""

from __future__ import annotations

import numpy as np

_EXP_TERMS = 20  # ||X||_1 <= 1/2: 0.5^20 / 20! ~ 4e-25
_LOG_TERMS = 40  # ||Y||_1 <= 1/4: 0.25^40 / 40 ~ 2e-26


def expm(a: np.ndarray) -> np.ndarray:
    """Matrix exponential of a small square matrix [n, n] (scaling and squaring + Taylor)."""
    a = np.asarray(a, dtype=np.float64)
    norm = np.abs(a).sum(axis=0).max()
    s = int(np.ceil(np.log2(norm / 0.5))) if norm > 0.5 else 0
    x = a / (2.0 ** s)
    n = a.shape[-1]
    term = np.eye(n)
    out = np.eye(n)
    for k in range(1, _EXP_TERMS + 1):
        term = term @ x / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def expm_frechet(a: np.ndarray, e: np.ndarray, compute_expm: bool = True, method: str | None = None):  # noqa: ANN201
    """Frechet derivative of expm at ``a`` in direction ``e`` (scipy's signature)."""
    n = a.shape[-1]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n] = a
    block[n:, n:] = a
    block[:n, n:] = e
    big = expm(block)
    if compute_expm:
        return big[:n, :n], big[:n, n:]
    return big[:n, n:]


def _sqrtm_db(f: np.ndarray, iters: int = 50) -> np.ndarray:
    """Principal square root by the Denman-Beavers iteration."""
    y, z = f.copy(), np.eye(f.shape[-1])
    for _ in range(iters):
        y_next = 0.5 * (y + np.linalg.inv(z))
        z = 0.5 * (z + np.linalg.inv(y))
        if np.abs(y_next - y).max() <= 1e-16 * max(1.0, np.abs(y_next).max()):
            return y_next
        y = y_next
    return y


def logm(f: np.ndarray, disp: bool = True):  # noqa: ANN201
    """Principal matrix logarithm for matrices near the identity; scipy's for the rest."""
    f = np.asarray(f, dtype=np.float64)
    n = f.shape[-1]
    eye = np.eye(n)
    x, j = f, 0
    while np.abs(x - eye).sum(axis=0).max() > 0.25:
        if j >= 8:  # far from the identity: leave it to scipy
            from scipy.linalg import logm as scipy_logm

            return scipy_logm(f, disp=disp)
        x = _sqrtm_db(x)
        j += 1
    y = x - eye
    term = eye
    out = np.zeros((n, n))
    for k in range(1, _LOG_TERMS + 1):
        term = term @ y
        out = out + ((-1.0) ** (k + 1)) * term / k
    out = out * (2.0 ** j)
    return out if disp else (out, 0.0)


def install(cell_filter: object) -> object:
    """Give a ``FrechetCellFilter`` these routines (its own ``expm``/``logm``/``expm_frechet`` hooks)."""
    for name, fn in (("expm", expm), ("logm", logm), ("expm_frechet", expm_frechet)):
        if hasattr(cell_filter, name):
            setattr(cell_filter, name, fn)
    return cell_filter
