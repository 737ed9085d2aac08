"""Discovery significance and the look-elsewhere effect (docs/method.md section 7)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from .likelihood import RANK_TOL, FitResult, WindowModel, _as_rows, fit_c

__all__ = ["n_eff", "p_global_sidak", "p_local", "q0", "z_from_p", "z_local"]


def q0(
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    fit: FitResult | None = None,
    *,
    rank_tol: float = RANK_TOL,
) -> NDArray[np.float64] | float:
    """Discovery statistic ``q0 = 2[NLL(0, theta^^) - NLL(A_hat, theta^)]`` if ``A_hat > 0``,
    else 0. Vectorised over leading axes of ``n``; ``fit`` is an optional
    :func:`~gprpipe.stats.likelihood.fit_signal` result for the same ``n``.
    """
    if fit is not None and fit.nll0 is not None:
        A = np.asarray(fit.A_hat, dtype=float)
        q = np.where(A > 0, 2.0 * (np.asarray(fit.nll0) - np.asarray(fit.nll_hat)), 0.0)
    else:
        win = WindowModel(b, L, w, rank_tol=rank_tol)
        n2, lead = _as_rows(n)
        f = fit_c(win, n2)
        q = np.where(f.A > 0, 2.0 * (f.f0 - f.f), 0.0).reshape(lead)
    q = np.maximum(q, 0.0)
    return float(q) if q.ndim == 0 else q


def z_local(q0: ArrayLike) -> NDArray[np.float64] | float:
    """Local significance ``Z = sqrt(q0)`` (``q0 < 0`` treated as 0)."""
    z = np.sqrt(np.maximum(np.asarray(q0, dtype=float), 0.0))
    return float(z) if z.ndim == 0 else z


def p_local(z: ArrayLike) -> NDArray[np.float64] | float:
    """One-sided local p-value ``p0 = 1 - Phi(Z)``."""
    p = ndtr(-np.asarray(z, dtype=float))
    return float(p) if np.ndim(p) == 0 else p


def n_eff(masses: ArrayLike, sigmas: ArrayLike, nsigma: float) -> float:
    """Effective number of independent tests ``sum_steps dm / (W sigma(m))``.

    Sum over consecutive scan steps (``sigma`` at the step midpoint, i.e. the trapezoid
    of ``1/sigma``), ``W = nsigma`` (the blind half-width in sigma), clipped to
    ``[1, N_masses]``.
    """
    m = np.asarray(masses, dtype=float).reshape(-1)
    s = np.asarray(sigmas, dtype=float).reshape(-1)
    if m.size != s.size:
        raise ValueError("masses and sigmas must have the same length")
    if m.size <= 1:
        return 1.0
    order = np.argsort(m)
    m, s = m[order], s[order]
    inv = 1.0 / s
    total = float(np.sum(np.diff(m) * 0.5 * (inv[1:] + inv[:-1])) / float(nsigma))
    return float(np.clip(total, 1.0, m.size))


def p_global_sidak(p_local: ArrayLike, n_eff: float) -> NDArray[np.float64] | float:
    """Sidak correction ``p_global = 1 - (1 - p_local)^N_eff`` (stable for tiny p)."""
    p = np.clip(np.asarray(p_local, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        pg = -np.expm1(float(n_eff) * np.log1p(-p))
    pg = np.clip(np.maximum(pg, p), 0.0, 1.0)
    return float(pg) if pg.ndim == 0 else pg


def z_from_p(p: ArrayLike, *, clip: bool = True) -> NDArray[np.float64] | float:
    """One-sided significance ``Z = Phi^-1(1 - p)`` (stable for tiny p); ``Z >= 0`` when
    ``clip`` (p >= 0.5 gives 0)."""
    z = -ndtri(np.clip(np.asarray(p, dtype=float), 0.0, 1.0))
    if clip:
        z = np.maximum(z, 0.0)
    return float(z) if np.ndim(z) == 0 else z
