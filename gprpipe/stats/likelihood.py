"""Profiled Poisson likelihood of the blind window with correlated GP nuisances.

Model (docs/method.md section 5): ``lam = b + L theta + A w`` with ``L L^T = C`` and
``theta ~ N(0, I)``;

    NLL(A, theta) = -sum_i [n_i ln lam_i - lam_i] + theta.theta / 2,

with ``lam`` floored at :data:`LAM_FLOOR`. Every routine is vectorised over leading
axes of ``n`` (toys): the profile over ``theta`` (and the joint fit over ``(A, theta)``)
is a convex problem solved by damped Newton steps for all toys at once.

Internally the nuisance factor is *compressed*: ``L`` is rotated to the eigenbasis of the
Poisson-whitened covariance ``B^-1/2 C B^-1/2`` and directions whose Fisher information is
below ``rank_tol`` are dropped (default 1e-10: the NLL moves by about half the dropped
information, ~1e-10). A smooth GP covariance over 5-40 bins has only a handful of directions
above that, which makes the batched Newton solves cheap. ``theta`` is always returned in the
basis of the ``L`` given.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy

LAM_FLOOR = 1e-10
"""Smallest expected count used in the likelihood (``lam`` is floored at this value)."""

RANK_TOL = 1e-10
"""Default whitened-information threshold below which a nuisance direction is dropped."""

_ARMIJO = 1e-4
_TO_BOUNDARY = 0.99
_QUAD = 0.05

__all__ = [
    "LAM_FLOOR",
    "FitResult",
    "WindowModel",
    "cholesky_jitter",
    "fit_signal",
    "nll",
    "profile_theta",
]


def cholesky_jitter(C: ArrayLike, *, max_tries: int = 12) -> NDArray[np.float64]:
    """Lower Cholesky factor of ``C`` with a growing diagonal jitter until it is PD.

    The jitter starts at ``1e-12 * mean(diag C)`` and grows tenfold per failure. A zero
    matrix gets a factor of zeros (no nuisance). ``C`` of shape ``(k, k)``; ``k = 1`` works.
    """
    C = np.atleast_2d(np.asarray(C, dtype=float))
    C = 0.5 * (C + C.T)
    k = C.shape[0]
    scale = float(np.mean(np.abs(np.diag(C)))) if k else 0.0
    if scale == 0.0:
        return np.zeros_like(C)
    jitter = 0.0
    for i in range(max_tries):
        try:
            return np.linalg.cholesky(C + jitter * np.eye(k))
        except np.linalg.LinAlgError:
            jitter = scale * 1e-12 * 10.0**i
    # Last resort: eigen-decomposition with negative eigenvalues clipped (always works).
    s, U = np.linalg.eigh(C)
    return U * np.sqrt(np.clip(s, 0.0, None))


# --------------------------------------------------------------------------------------
# Internal model: compressed factor and vectorised Newton solver
# --------------------------------------------------------------------------------------


class WindowModel:
    """One blind window ``(b, L, w)`` prepared for fast vectorised fits.

    ``Lc = L @ V`` is the compressed factor (``k x r``), ``V`` (``r_full x r``) has
    orthonormal columns; a compressed ``theta_c`` maps back as ``theta = V @ theta_c``.
    """

    def __init__(
        self, b: ArrayLike, L: ArrayLike, w: ArrayLike, *, rank_tol: float = RANK_TOL
    ) -> None:
        self.b = np.atleast_1d(np.asarray(b, dtype=float))
        self.w = np.atleast_1d(np.asarray(w, dtype=float))
        L = np.asarray(L, dtype=float)
        k = self.b.shape[0]
        L = L.reshape(k, -1)
        if self.w.shape != (k,):
            raise ValueError(f"w has shape {self.w.shape}, expected ({k},)")
        self.k = k
        self.L = L
        scale = np.sqrt(np.maximum(self.b, 1e-3))
        if L.shape[1] == 0 or not np.any(L):
            V = np.zeros((L.shape[1], 1))
            if L.shape[1]:
                V[0, 0] = 1.0
            Lc = np.zeros((k, 1))
        else:
            _, s, Vt = np.linalg.svd(L / scale[:, None], full_matrices=False)
            keep = s**2 >= rank_tol
            keep[0] = True
            V = Vt[keep].T
            Lc = L @ V
        self.V = V
        self.Lc = Lc
        self.r = Lc.shape[1]
        # G for the joint fit: columns (w, Lc); prior weight 0 on A, 1 on theta.
        self.G_theta = Lc
        self.G_full = np.column_stack([self.w, Lc])
        self.prior_theta = np.ones(self.r)
        self.prior_full = np.concatenate([[0.0], np.ones(self.r)])
        ridge_a = 1e-12 * float(np.sum(self.w**2 / np.maximum(self.b, 1.0))) + 1e-300
        self.ridge_theta = np.zeros(self.r)
        self.ridge_full = np.concatenate([[ridge_a], np.zeros(self.r)])
        self.GG_theta = _outer_cols(self.G_theta)
        self.GG_full = _outer_cols(self.G_full)
        self._gls: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None

    # -- helpers -------------------------------------------------------------------
    def with_background(self, b: ArrayLike) -> WindowModel:
        """Same window (same compressed nuisance basis) with another background mean."""
        new = copy.copy(self)
        new.b = np.atleast_1d(np.asarray(b, dtype=float)).copy()
        if new.b.shape != self.b.shape:
            raise ValueError(f"b has shape {new.b.shape}, expected {self.b.shape}")
        new._gls = None
        return new

    def theta_full(self, theta_c: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map compressed nuisance parameters back to the basis of ``L``."""
        return theta_c @ self.V.T

    def theta_compressed(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """Project nuisance parameters in the basis of ``L`` onto the kept directions."""
        return theta @ self.V

    def _gls_setup(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        if self._gls is None:
            Vm = self.Lc @ self.Lc.T + np.diag(np.maximum(self.b, 1.0))
            X = np.linalg.solve(Vm, np.column_stack([self.w, self.Lc]))
            self._gls = (X[:, 0].copy(), np.ascontiguousarray(X[:, 1:]))
        return self._gls

    def gls_vector(self) -> NDArray[np.float64]:
        """``V^-1 w`` with ``V = C + diag(max(b, 1))`` (for the GLS starting point)."""
        return self._gls_setup()[0]

    def gls_theta(self, resid: NDArray[np.float64]) -> NDArray[np.float64]:
        """Linear-Gaussian ``theta_c = Lc^T V^-1 (n - lam_0)`` for residuals ``(T, k)``."""
        return resid @ self._gls_setup()[1]

    def theta_slope(self) -> NDArray[np.float64]:
        """Linear-Gaussian ``-d theta_c / dA = Lc^T V^-1 w`` (for warm starts across A)."""
        return self.w @ self._gls_setup()[1]

    def const(self, n: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sum(n - n ln n)``: converts the centred NLL to the NLL of the spec."""
        return np.sum(n - xlogy(n, n), axis=-1)


def _centred_terms(n: NDArray[np.float64], lam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-toy ``sum_i [lam - n + n ln(n/lam)]`` with ``lam`` floored (>= 0 per bin)."""
    lamf = np.maximum(lam, LAM_FLOOR)
    nsafe = np.where(n > 0, n, 1.0)
    return np.sum(lamf - n - xlogy(n, lamf / nsafe), axis=-1)


def _lin(G: NDArray[np.float64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    """``G p`` per row: ``G`` shared ``(k, P)`` or per row ``(T, k, P)``; ``p`` ``(T, P)``."""
    return p @ G.T if G.ndim == 2 else np.matmul(G, p[:, :, None])[:, :, 0]


def _objective(n, base, G, prior, p):
    lam = base + _lin(G, p)
    return _centred_terms(n, lam) + 0.5 * np.sum(prior * p * p, axis=-1), lam


def _outer_cols(G: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(k, P*P)`` matrix of per-bin outer products ``G_i G_i^T`` (flattened)."""
    k, P = G.shape
    return (G[:, :, None] * G[:, None, :]).reshape(k, P * P)


def _hessian(D: NDArray[np.float64], GG: NDArray[np.float64]) -> NDArray[np.float64]:
    """Batched ``G^T diag(D_t) G`` as one GEMM ``(T, k) @ (k, P*P)``."""
    P = math.isqrt(GG.shape[1])
    return (D @ GG).reshape(D.shape[0], P, P)


def _line_search(n, base, G, prior, p, d, dec, t):
    """Armijo backtracking (halving) from step ``t``; returns ``(t, ok, f_old, f_new)``."""
    f_old, _ = _objective(n, base, G, prior, p)
    f_new, _ = _objective(n, base, G, prior, p + t[:, None] * d)
    ok = f_new <= f_old - _ARMIJO * t * dec
    for _ in range(60):
        if ok.all():
            break
        rej = np.flatnonzero(~ok)
        t[rej] *= 0.5
        Gr = G if G.ndim == 2 else G[rej]
        fr, _ = _objective(n[rej], base[rej], Gr, prior, p[rej] + t[rej, None] * d[rej])
        f_new[rej] = fr
        ok[rej] = fr <= f_old[rej] - _ARMIJO * t[rej] * dec[rej]
    return t, ok, f_old, f_new


def _newton(
    n: NDArray[np.float64],
    base: NDArray[np.float64],
    G: NDArray[np.float64],
    prior: NDArray[np.float64],
    ridge: NDArray[np.float64],
    p0: NDArray[np.float64],
    GG: NDArray[np.float64] | None = None,
    *,
    tol: float = 1e-7,
    max_iter: int = 100,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Minimise ``sum_i centred(n_i, base_i + (G p)_i) + sum(prior p^2)/2`` per row.

    ``n``, ``base``: ``(T, k)``; ``p0``: ``(T, P)``; ``G``: ``(k, P)`` shared by every row,
    or ``(T, k, P)`` per row (a nuisance factor that scales with each toy's background).
    Damped Newton, iterating only on rows that have not converged. A
    fraction-to-the-boundary rule keeps ``lam`` above the floor. The NLL is
    self-concordant (``-n ln lam`` with ``n >= 1``; the constant grows as ``1/sqrt(n)`` for
    smaller non-integer ``n``), so inside the region where the squared
    Newton decrement ``g H^-1 g`` is below ``_QUAD * min(1, n_min)`` a full step is taken
    without a line search; elsewhere Armijo backtracking. Converged when the squared
    decrement is below ``tol``; one last full step then leaves the NLL within ~tol^2 of its
    minimum. Returns ``(f, p, converged)`` with the centred NLL ``f``.
    """
    T = n.shape[0]
    P = G.shape[-1]
    per_row = G.ndim == 3
    if GG is None and not per_row:
        GG = _outer_cols(G)
    GT = None if per_row else np.ascontiguousarray(G.T)
    Gsum = G.sum(axis=0)
    diag = prior + ridge
    ii = np.arange(P)
    p = np.array(p0, dtype=float, copy=True)
    conv = np.zeros(T, dtype=bool)
    with np.errstate(divide="ignore"):
        nmin = np.min(np.where(n > 0, n, np.inf), axis=1)
    quad_thr = _QUAD * np.minimum(1.0, nmin)
    active = np.arange(T)
    for _ in range(max_iter):
        if active.size == 0:
            break
        whole = active.size == T
        na = n if whole else n[active]
        ba = base if whole else base[active]
        pa = p if whole else p[active]
        Ga = G if (whole or not per_row) else G[active]
        la = ba + (pa @ GT if GT is not None else _lin(Ga, pa))
        above = la > LAM_FLOOR
        if above.all():
            ratio = na / la
            D = ratio / la
            ones = None
        else:
            lamf = np.maximum(la, LAM_FLOOR)
            ratio = np.where(above, na / lamf, 0.0)
            D = ratio / lamf
            ones = above.astype(float)
        if per_row:  # sum_i (1 - n_i/lam_i) G_ti, over the bins above the floor
            g = np.matmul(((1.0 if ones is None else ones) - ratio)[:, None, :], Ga)[:, 0]
            g += prior * pa
            H = np.matmul(Ga.transpose(0, 2, 1) * D[:, None, :], Ga)
        else:
            g = (Gsum if ones is None else ones @ G) - ratio @ G + prior * pa
            H = _hessian(D, GG)
        H[:, ii, ii] += diag
        d = -np.linalg.solve(H, g[..., None])[..., 0]
        dec = -np.einsum("ti,ti->t", g, d)
        bad = ~np.isfinite(dec) | (dec < 0)
        if bad.any():  # singular/indefinite (should not happen): steepest descent
            d[bad] = -g[bad]
            dec[bad] = np.einsum("ti,ti->t", g[bad], g[bad])
        dlam = d @ GT if GT is not None else _lin(Ga, d)
        shrink = (dlam < 0) & above
        if shrink.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                lim = np.where(shrink, (la - LAM_FLOOR) / -dlam, np.inf)
            tmax = _TO_BOUNDARY * np.min(lim, axis=1)
        else:
            tmax = np.full(active.size, np.inf)
        full = tmax >= 1.0 / _TO_BOUNDARY
        done = (dec < tol) & full
        quad = (dec < (quad_thr if whole else quad_thr[active])) & full
        t = np.minimum(1.0, tmax)
        ok = np.ones(active.size, dtype=bool)
        boundary = np.zeros(active.size, dtype=bool)
        ls = np.flatnonzero(~quad)
        if ls.size:
            t_ls, ok_ls, f_old, f_new = _line_search(
                na[ls], ba[ls], Ga[ls] if per_row else G, prior, pa[ls], d[ls], dec[ls], t[ls]
            )
            t[ls] = np.where(ok_ls, t_ls, 0.0)
            ok[ls] = ok_ls
            boundary[ls] = (tmax[ls] < 1.0) & (
                np.abs(f_old - f_new) <= 1e-13 * (1.0 + np.abs(f_old))
            )
        p[active] = pa + t[:, None] * d
        finished = done | ~ok | boundary
        # Rows stuck at the lam >= 0 boundary of empty bins (e.g. A -> -inf when every
        # signal bin is empty) stop there but are not flagged as converged.
        conv[active[done]] = True
        active = active[~finished]
    f, _ = _objective(n, base, G, prior, p)
    return f, p, conv


# --------------------------------------------------------------------------------------
# Internal vectorised fits on a prepared window (centred NLL, compressed theta)
# --------------------------------------------------------------------------------------


def _as_rows(n: ArrayLike) -> tuple[NDArray[np.float64], tuple[int, ...]]:
    n = np.asarray(n, dtype=float)
    lead = n.shape[:-1]
    return n.reshape(-1, n.shape[-1]), lead


def profile_c(
    win: WindowModel,
    n2: NDArray[np.float64],
    A: NDArray[np.float64],
    theta0: NDArray[np.float64] | None = None,
    A_ref: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Profile ``theta_c`` at fixed ``A`` (shape ``(T,)``) for rows ``n2`` ``(T, k)``.

    Warm start: ``theta0`` (profiled at ``A_ref`` if given, then shifted by the
    linear-Gaussian response ``-(A - A_ref) Lc^T V^-1 w``), else the GLS estimate.
    Returns the centred NLL, the compressed ``theta`` and the convergence flags.
    """
    T = n2.shape[0]
    A = np.broadcast_to(np.asarray(A, dtype=float), (T,))
    base = win.b + A[:, None] * win.w
    if theta0 is None:
        p0 = win.gls_theta(n2 - base)
    else:
        p0 = np.array(theta0, dtype=float)
        if A_ref is not None:
            p0 -= (A - A_ref)[:, None] * win.theta_slope()
    # Keep the start feasible: fall back to theta = 0 (lam = b + A w) otherwise.
    lam0 = base + p0 @ win.Lc.T
    bad = np.any(lam0 <= LAM_FLOOR, axis=1)
    if np.any(bad):
        p0[bad] = 0.0
    return _newton(n2, base, win.Lc, win.prior_theta, win.ridge_theta, p0, win.GG_theta)


@dataclass
class FitResult:
    """Joint fit of ``(A, theta)``; arrays over the leading axes of ``n`` (or scalars).

    ``nll_hat`` follows the spec's definition (no ``ln n!``); ``theta_hat`` is in the basis
    of the ``L`` given; ``sigma_A`` from the observed information (Schur complement).
    ``nll0`` / ``theta0`` are the profile at ``A = 0`` (filled by the fit, used by q~ and q0).
    """

    A_hat: NDArray[np.float64] | float
    sigma_A: NDArray[np.float64] | float
    nll_hat: NDArray[np.float64] | float
    theta_hat: NDArray[np.float64]
    converged: NDArray[np.bool_] | bool
    nll0: NDArray[np.float64] | float | None = None
    theta0: NDArray[np.float64] | None = None


@dataclass
class _Fit:
    """Internal fit result on flattened rows with the centred NLL and compressed theta."""

    A: NDArray[np.float64]
    sigma: NDArray[np.float64]
    f: NDArray[np.float64]
    th: NDArray[np.float64]
    conv: NDArray[np.bool_]
    f0: NDArray[np.float64]
    th0: NDArray[np.float64]


def fit_c(
    win: WindowModel, n2: NDArray[np.float64], *, allow_negative: bool = True, need0: str = "all"
) -> _Fit:
    """Joint fit on rows ``n2`` ``(T, k)`` plus the profile at ``A = 0`` (both centred).

    ``need0``: rows on which the ``A = 0`` profile is computed: ``"all"`` (q0, FitResult),
    ``"negative"`` (only ``A_hat < 0``, all q~ needs); elsewhere ``f0`` is NaN.
    """
    T = n2.shape[0]
    u = win.gls_vector()
    resid = n2 - win.b
    A0 = resid @ u / float(win.w @ u)
    # Start on the GLS estimate but inside the physical region (lam >= b/2 where w > 0).
    pos = win.w > 0
    A_lo = -0.5 * np.min(win.b[pos] / win.w[pos]) if np.any(pos) else -np.inf
    A0 = np.maximum(A0, A_lo)
    p0 = np.empty((T, win.r + 1))
    p0[:, 0] = A0
    p0[:, 1:] = win.gls_theta(resid - A0[:, None] * win.w)
    lam0 = win.b + p0 @ win.G_full.T
    bad = np.any(lam0 <= LAM_FLOOR, axis=1)
    if np.any(bad):
        p0[bad, 1:] = 0.0
    base = np.broadcast_to(win.b, n2.shape)
    f, p, conv = _newton(n2, base, win.G_full, win.prior_full, win.ridge_full, p0, win.GG_full)
    A = p[:, 0].copy()
    th = p[:, 1:].copy()
    # Profile at A = 0 (q~ when A_hat < 0, q0 when A_hat > 0, the A >= 0 restriction).
    rows = np.arange(T) if need0 == "all" else np.flatnonzero(A < 0)
    f0 = np.full(T, np.nan)
    th0 = np.full_like(th, np.nan) if need0 != "all" else np.empty_like(th)
    c0 = np.ones(T, dtype=bool)
    if rows.size:
        f0r, th0r, c0r = profile_c(win, n2[rows], np.zeros(rows.size), th[rows], A[rows])
        f0[rows], th0[rows], c0[rows] = f0r, th0r, c0r
        # Convexity guard: the joint minimum can never be above a profile point.
        worse = rows[f0r < f[rows]]
        if worse.size:
            A[worse] = 0.0
            th[worse] = th0[worse]
            f[worse] = f0[worse]
    if not allow_negative:
        neg = A < 0
        A[neg] = 0.0
        th[neg] = th0[neg]
        f[neg] = f0[neg]
        conv = conv & np.where(neg, c0, True)
    sigma = _sigma_A(win, n2, A, th)
    return _Fit(A=A, sigma=sigma, f=f, th=th, conv=conv, f0=f0, th0=th0)


def _sigma_A(win: WindowModel, n2, A, th) -> NDArray[np.float64]:
    """``sqrt([H^-1]_AA)`` of the observed information at ``(A, theta)``."""
    lam = win.b + A[:, None] * win.w + th @ win.Lc.T
    lamf = np.maximum(lam, LAM_FLOOR)
    D = np.where(lam > LAM_FLOOR, n2 / lamf**2, 0.0)
    G = win.G_full
    H = _hessian(D, win.GG_full) + win.prior_full * np.eye(G.shape[1])
    e = np.zeros((n2.shape[0], G.shape[1], 1))
    e[:, 0, 0] = 1.0
    with np.errstate(all="ignore"):
        try:
            var = np.linalg.solve(H, e)[:, 0, 0]
        except np.linalg.LinAlgError:
            var = np.array([_safe_var(h) for h in H])
    return np.where(np.isfinite(var) & (var > 0), np.sqrt(np.abs(var)), np.inf)


def _safe_var(h: NDArray[np.float64]) -> float:
    try:
        return float(np.linalg.solve(h, np.eye(h.shape[0])[:, 0])[0])
    except np.linalg.LinAlgError:
        return np.inf


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def nll(
    A: ArrayLike, theta: ArrayLike, n: ArrayLike, b: ArrayLike, L: ArrayLike, w: ArrayLike
) -> NDArray[np.float64] | float:
    """``-sum[n ln lam - lam] + theta.theta/2`` with ``lam = b + L theta + A w`` (floored).

    Vectorised: ``n`` ``(..., k)``, ``theta`` ``(..., r)``, ``A`` broadcastable to the
    leading shape.
    """
    n = np.asarray(n, dtype=float)
    theta = np.asarray(theta, dtype=float)
    L = np.asarray(L, dtype=float).reshape(len(np.atleast_1d(b)), -1)
    A = np.asarray(A, dtype=float)
    lam = np.asarray(b, dtype=float) + theta @ L.T + A[..., None] * np.asarray(w, dtype=float)
    lam = np.maximum(lam, LAM_FLOOR)
    out = -np.sum(xlogy(n, lam) - lam, axis=-1) + 0.5 * np.sum(theta * theta, axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def profile_theta(
    A: ArrayLike,
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    *,
    theta0: ArrayLike | None = None,
    rank_tol: float = RANK_TOL,
) -> tuple[NDArray[np.float64] | float, NDArray[np.float64]]:
    """Minimise the NLL over ``theta`` at fixed ``A`` by Newton steps.

    ``n`` ``(..., k)``; ``A`` broadcastable to ``n.shape[:-1]``. Returns
    ``(nll_min, theta_hat)`` with ``nll_min`` of shape ``n.shape[:-1]`` (spec definition)
    and ``theta_hat`` of shape ``n.shape[:-1] + (L.shape[1],)``.
    """
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    n2, lead = _as_rows(n)
    A2 = np.broadcast_to(np.asarray(A, dtype=float), lead).reshape(-1)
    th0 = None
    if theta0 is not None:
        t0 = np.broadcast_to(np.asarray(theta0, dtype=float), (*lead, win.L.shape[1]))
        th0 = win.theta_compressed(t0.reshape(-1, win.L.shape[1]))
    f, th, _ = profile_c(win, n2, A2, th0)
    nll_min = (f + win.const(n2)).reshape(lead)
    theta = win.theta_full(th).reshape((*lead, win.L.shape[1]))
    return (float(nll_min) if nll_min.ndim == 0 else nll_min), theta


def _unflatten(x: NDArray, lead: tuple[int, ...]):
    x = x.reshape(tuple(lead) + x.shape[1:])
    if x.ndim == 0:
        return x.item()
    return x


def fit_result(win: WindowModel, fit: _Fit, n2: NDArray[np.float64], lead) -> FitResult:
    """Convert an internal fit into the public :class:`FitResult`."""
    c = win.const(n2)
    return FitResult(
        A_hat=_unflatten(fit.A, lead),
        sigma_A=_unflatten(fit.sigma, lead),
        nll_hat=_unflatten(fit.f + c, lead),
        theta_hat=win.theta_full(fit.th).reshape((*lead, win.L.shape[1])),
        converged=_unflatten(fit.conv, lead),
        nll0=_unflatten(fit.f0 + c, lead),
        theta0=win.theta_full(fit.th0).reshape((*lead, win.L.shape[1])),
    )


def fit_signal(
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    *,
    allow_negative: bool = True,
    rank_tol: float = RANK_TOL,
) -> FitResult:
    """Joint maximum-likelihood fit of ``(A, theta)``, vectorised over leading axes of ``n``.

    Starts from the GLS estimate ``A0 = w V^-1 (n - b) / w V^-1 w``,
    ``V = C + diag(max(b, 1))``. With ``allow_negative=False`` the fit is restricted to
    ``A >= 0`` (exact for this convex problem: ``A_hat = 0`` when the free minimum is
    negative). ``sigma_A`` is ``sqrt([I^-1]_AA)`` of the observed information at the
    minimum, i.e. the Schur complement over ``theta``.
    """
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    n2, lead = _as_rows(n)
    return fit_result(win, fit_c(win, n2, allow_negative=allow_negative), n2, lead)
