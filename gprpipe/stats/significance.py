"""Discovery significance and the look-elsewhere effect (docs/method.md section 7).

Arrays in, arrays out (0-d for a scalar input)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

__all__ = ["n_eff", "p_global_sidak", "p_local", "z_from_p", "z_local"]

FloatArray = NDArray[np.float64]

# q0 itself is a method of the window model (:meth:`.likelihood.WindowModel.q0`).


def z_local(q0: ArrayLike) -> FloatArray:
    """Local significance ``Z = sqrt(q0)`` (``q0 < 0`` treated as 0)."""
    z: FloatArray = np.sqrt(np.maximum(np.asarray(q0, dtype=float), 0.0))
    return z


def p_local(z: ArrayLike) -> FloatArray:
    """One-sided local p-value ``p0 = 1 - Phi(Z)``."""
    p: FloatArray = np.asarray(ndtr(-np.asarray(z, dtype=float)))
    return p


def n_eff(masses: ArrayLike, sigmas: ArrayLike, blind_nsigma: float) -> float:
    """Effective number of independent tests ``sum_m dm / (W sigma(m))``.

    One term per scan mass ``m``, with ``sigma`` at that mass and ``dm`` its scan step
    (half the distance between its neighbours; the one neighbour's distance at either end,
    so the step of an even grid), ``W = blind_nsigma`` (the blind half-width in sigma);
    each term at most 1 (a mass far from the others is one test, not the gap's worth);
    clipped to ``[1, N_masses]``.
    """
    m = np.asarray(masses, dtype=float).reshape(-1)
    s = np.asarray(sigmas, dtype=float).reshape(-1)
    if m.size != s.size:
        raise ValueError("masses and sigmas must have the same length")
    if m.size <= 1:
        return 1.0
    order = np.argsort(m)
    m, s = m[order], s[order]
    total = float(np.sum(np.minimum(np.gradient(m) / (float(blind_nsigma) * s), 1.0)))
    return float(np.clip(total, 1.0, m.size))


def p_global_sidak(p_local: ArrayLike, n_eff: float) -> FloatArray:
    """Sidak correction ``p_global = 1 - (1 - p_local)^N_eff`` (stable for tiny p)."""
    p = np.clip(np.asarray(p_local, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        pg = -np.expm1(float(n_eff) * np.log1p(-p))
    out: FloatArray = np.clip(np.maximum(pg, p), 0.0, 1.0)
    return out


def z_from_p(p: ArrayLike, *, clip: bool = True) -> FloatArray:
    """One-sided significance ``Z = Phi^-1(1 - p)`` (stable for tiny p); ``Z >= 0`` when
    ``clip`` (p >= 0.5 gives 0)."""
    z: FloatArray = np.asarray(-ndtri(np.clip(np.asarray(p, dtype=float), 0.0, 1.0)))
    if clip:
        z = np.maximum(z, 0.0)
    return z
