"""The blind-window model: profiled Poisson likelihood with correlated GP nuisances.

Model (docs/method.md section 5): ``lam = b + L theta + A w`` with ``L L^T = C`` and
``theta ~ N(0, I)``;

    NLL(A, theta) = -sum_i [n_i ln lam_i - lam_i] + theta.theta / 2,

with ``lam`` floored at :data:`LAM_FLOOR`. :class:`WindowModel` is built once per mass (in the
style of pyhf's model) and offers the fit, the profile over ``theta`` and the test
statistics; :mod:`.cls` puts the asymptotic and toy calculators on top of it. Every method is
vectorised over leading axes of ``n`` (toys): the profile over ``theta`` (and the joint fit
over ``(A, theta)``) is a convex problem solved by damped Newton steps for all toys at once
(:func:`minimise`). Results come back as one type, :class:`FitResult`.

Internally the nuisance factor is *compressed*: ``L`` is rotated to the eigenbasis of the
Poisson-whitened covariance ``B^-1/2 C B^-1/2`` and directions whose Fisher information is
below ``rank_tol`` are dropped (default 1e-10: the NLL moves by about half the dropped
information, ~1e-10). A smooth GP covariance over 5-40 bins has only a handful of directions
above that, which makes the batched Newton solves cheap. ``theta`` is returned in the basis
of the ``L`` given; the ``*_rows`` methods work on flattened rows, the centred NLL
``sum[lam - n + n ln(n/lam)] + theta.theta/2`` and the compressed ``theta``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import xlogy

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

LAM_FLOOR = 1e-10
"""Smallest expected count used in the likelihood (``lam`` is floored at this value)."""

RANK_TOL = 1e-10
"""Default whitened-information threshold below which a nuisance direction is dropped."""

_ARMIJO = 1e-4
_TO_BOUNDARY = 0.99
_QUAD = 0.05

__all__ = [
    "LAM_FLOOR",
    "RANK_TOL",
    "FitResult",
    "WindowModel",
    "cholesky_jitter",
    "minimise",
    "qtilde_from",
]


def cholesky_jitter(C: ArrayLike, *, max_tries: int = 12) -> FloatArray:
    """Lower Cholesky factor of ``C`` with a growing diagonal jitter until it is PD.

    The jitter starts at ``1e-12 * mean(diag C)`` and grows tenfold per failure. A zero
    matrix gets a factor of zeros (no nuisance). ``C`` of shape ``(k, k)``; ``k = 1`` works.
    """
    Ca = np.atleast_2d(np.asarray(C, dtype=float))
    Ca = 0.5 * (Ca + Ca.T)
    k = Ca.shape[0]
    scale = float(np.mean(np.abs(np.diag(Ca)))) if k else 0.0
    if scale == 0.0:
        return np.zeros_like(Ca)
    jitter = 0.0
    for i in range(max_tries):
        try:
            return np.linalg.cholesky(Ca + jitter * np.eye(k))
        except np.linalg.LinAlgError:
            jitter = scale * 1e-12 * 10.0**i
    # Last resort: eigen-decomposition with negative eigenvalues clipped (always works).
    s, U = np.linalg.eigh(Ca)
    out: FloatArray = U * np.sqrt(np.clip(s, 0.0, None))
    return out


# --------------------------------------------------------------------------------------
# Vectorised damped Newton solver
# --------------------------------------------------------------------------------------


def _centred_terms(n: FloatArray, lam: FloatArray) -> FloatArray:
    """Per-toy ``sum_i [lam - n + n ln(n/lam)]`` with ``lam`` floored (>= 0 per bin)."""
    lamf = np.maximum(lam, LAM_FLOOR)
    nsafe = np.where(n > 0, n, 1.0)
    out: FloatArray = np.sum(lamf - n - xlogy(n, lamf / nsafe), axis=-1)
    return out


def _lin(G: FloatArray, p: FloatArray) -> FloatArray:
    """``G p`` per row: ``G`` shared ``(k, P)`` or per row ``(T, k, P)``; ``p`` ``(T, P)``."""
    out: FloatArray = p @ G.T if G.ndim == 2 else np.matmul(G, p[:, :, None])[:, :, 0]
    return out


def _objective(
    n: FloatArray, base: FloatArray, G: FloatArray, prior: FloatArray, p: FloatArray
) -> tuple[FloatArray, FloatArray]:
    lam = base + _lin(G, p)
    return _centred_terms(n, lam) + 0.5 * np.sum(prior * p * p, axis=-1), lam


def _outer_cols(G: FloatArray) -> FloatArray:
    """``(k, P*P)`` matrix of per-bin outer products ``G_i G_i^T`` (flattened)."""
    k, P = G.shape
    return (G[:, :, None] * G[:, None, :]).reshape(k, P * P)


def _hessian(D: FloatArray, GG: FloatArray) -> FloatArray:
    """Batched ``G^T diag(D_t) G`` as one GEMM ``(T, k) @ (k, P*P)``."""
    P = math.isqrt(GG.shape[1])
    return (D @ GG).reshape(D.shape[0], P, P)


def _line_search(
    n: FloatArray,
    base: FloatArray,
    G: FloatArray,
    prior: FloatArray,
    p: FloatArray,
    d: FloatArray,
    dec: FloatArray,
    t: FloatArray,
) -> tuple[FloatArray, BoolArray, FloatArray, FloatArray]:
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


def minimise(
    n: FloatArray,
    base: FloatArray,
    G: FloatArray,
    prior: FloatArray,
    ridge: FloatArray,
    p0: FloatArray,
    GG: FloatArray | None = None,
    *,
    tol: float = 1e-7,
    max_iter: int = 100,
) -> tuple[FloatArray, FloatArray, BoolArray]:
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
            assert GG is not None
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
# The model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitResult:
    """Joint fit of ``(A, theta)``, one row per toy (the leading axes of ``n`` flattened).

    Row arrays: ``A`` (``A_hat``), ``sigma`` (``sigma_A`` from the observed information, the
    Schur complement over ``theta``), ``f`` and ``f0`` (centred NLL at the fit and profiled at
    ``A = 0``; NaN where the ``A = 0`` profile was not needed), ``theta_c`` / ``theta0_c``
    (compressed ``theta``), ``conv`` and ``const`` (``sum(n - n ln n)``: centred + const =
    NLL of the spec). The properties give the same quantities with the leading shape of ``n``
    (0-d arrays for one window), the NLLs by the spec and ``theta`` in the basis of ``L``.
    """

    A: FloatArray
    sigma: FloatArray
    f: FloatArray
    f0: FloatArray
    theta_c: FloatArray
    theta0_c: FloatArray
    conv: BoolArray
    const: FloatArray
    shape: tuple[int, ...]
    V: FloatArray = field(repr=False)

    @property
    def A_hat(self) -> FloatArray:
        return self.A.reshape(self.shape)

    @property
    def sigma_A(self) -> FloatArray:
        return self.sigma.reshape(self.shape)

    @property
    def converged(self) -> BoolArray:
        return self.conv.reshape(self.shape)

    @property
    def nll_hat(self) -> FloatArray:
        return (self.f + self.const).reshape(self.shape)

    @property
    def nll0(self) -> FloatArray:
        return (self.f0 + self.const).reshape(self.shape)

    @property
    def theta_hat(self) -> FloatArray:
        out: FloatArray = (self.theta_c @ self.V.T).reshape((*self.shape, self.V.shape[0]))
        return out

    @property
    def theta0(self) -> FloatArray:
        out: FloatArray = (self.theta0_c @ self.V.T).reshape((*self.shape, self.V.shape[0]))
        return out


Need0 = Literal["all", "negative"]


class WindowModel:
    """One blind window ``(b, L, w)`` prepared for fast vectorised fits.

    Build it once per mass: ``WindowModel(b, L, w)`` with a factor ``L`` of the background
    covariance, or :meth:`from_covariance` with ``C``. ``Lc = L @ V`` is the compressed factor
    (``k x r``), ``V`` (``r_full x r``) has orthonormal columns; a compressed ``theta_c`` maps
    back as ``theta = V @ theta_c``.
    """

    def __init__(
        self, b: ArrayLike, L: ArrayLike, w: ArrayLike, *, rank_tol: float = RANK_TOL
    ) -> None:
        self.b = np.atleast_1d(np.asarray(b, dtype=float))
        self.w = np.atleast_1d(np.asarray(w, dtype=float))
        k = self.b.shape[0]
        Lm = np.asarray(L, dtype=float).reshape(k, -1)
        if self.w.shape != (k,):
            raise ValueError(f"w has shape {self.w.shape}, expected ({k},)")
        self.k = k
        self.L = Lm
        scale = np.sqrt(np.maximum(self.b, 1e-3))
        if Lm.shape[1] == 0 or not np.any(Lm):
            V = np.zeros((Lm.shape[1], 1))
            if Lm.shape[1]:
                V[0, 0] = 1.0
            Lc = np.zeros((k, 1))
        else:
            _, s, Vt = np.linalg.svd(Lm / scale[:, None], full_matrices=False)
            keep = s**2 >= rank_tol
            keep[0] = True
            V = Vt[keep].T
            Lc = Lm @ V
        self.V: FloatArray = V
        self.Lc: FloatArray = Lc
        self.r = Lc.shape[1]
        # G for the joint fit: columns (w, Lc); prior weight 0 on A, 1 on theta.
        self.G_full = np.column_stack([self.w, Lc])
        self.prior_theta = np.ones(self.r)
        self.prior_full = np.concatenate([[0.0], np.ones(self.r)])
        ridge_a = 1e-12 * float(np.sum(self.w**2 / np.maximum(self.b, 1.0))) + 1e-300
        self.ridge_theta = np.zeros(self.r)
        self.ridge_full = np.concatenate([[ridge_a], np.zeros(self.r)])
        self.GG_theta = _outer_cols(Lc)
        self.GG_full = _outer_cols(self.G_full)
        self._gls: tuple[FloatArray, FloatArray] | None = None

    @classmethod
    def from_covariance(
        cls, b: ArrayLike, C: ArrayLike, w: ArrayLike, *, rank_tol: float = RANK_TOL
    ) -> WindowModel:
        """The model of background ``b`` with covariance ``C`` (factored by
        :func:`cholesky_jitter`) and template ``w``."""
        return cls(b, cholesky_jitter(C), w, rank_tol=rank_tol)

    # -- helpers -------------------------------------------------------------------
    def with_background(self, b: ArrayLike) -> WindowModel:
        """Same window (same compressed nuisance basis) with another background mean."""
        new = copy.copy(self)
        new.b = np.atleast_1d(np.asarray(b, dtype=float)).copy()
        if new.b.shape != self.b.shape:
            raise ValueError(f"b has shape {new.b.shape}, expected {self.b.shape}")
        new._gls = None
        return new

    def theta_full(self, theta_c: FloatArray) -> FloatArray:
        """Map compressed nuisance parameters back to the basis of ``L``."""
        out: FloatArray = theta_c @ self.V.T
        return out

    def theta_compressed(self, theta: FloatArray) -> FloatArray:
        """Project nuisance parameters in the basis of ``L`` onto the kept directions."""
        out: FloatArray = theta @ self.V
        return out

    def rows(self, n: ArrayLike) -> tuple[FloatArray, tuple[int, ...]]:
        """``n`` ``(..., k)`` as rows ``(T, k)`` and its leading shape."""
        a = np.asarray(n, dtype=float)
        if a.shape[-1:] != (self.k,):
            raise ValueError(f"n has shape {a.shape}, expected (..., {self.k})")
        return a.reshape(-1, self.k), a.shape[:-1]

    def _gls_setup(self) -> tuple[FloatArray, FloatArray]:
        if self._gls is None:
            Vm = self.Lc @ self.Lc.T + np.diag(np.maximum(self.b, 1.0))
            X = np.linalg.solve(Vm, np.column_stack([self.w, self.Lc]))
            self._gls = (X[:, 0].copy(), np.ascontiguousarray(X[:, 1:]))
        return self._gls

    def gls_vector(self) -> FloatArray:
        """``V^-1 w`` with ``V = C + diag(max(b, 1))`` (for the GLS starting point)."""
        return self._gls_setup()[0]

    def gls_theta(self, resid: FloatArray) -> FloatArray:
        """Linear-Gaussian ``theta_c = Lc^T V^-1 (n - lam_0)`` for residuals ``(T, k)``."""
        return resid @ self._gls_setup()[1]

    def theta_slope(self) -> FloatArray:
        """Linear-Gaussian ``-d theta_c / dA = Lc^T V^-1 w`` (for warm starts across A)."""
        return self.w @ self._gls_setup()[1]

    def const(self, n: FloatArray) -> FloatArray:
        """``sum(n - n ln n)``: converts the centred NLL to the NLL of the spec."""
        out: FloatArray = np.sum(n - xlogy(n, n), axis=-1)
        return out

    # -- the likelihood --------------------------------------------------------------
    def nll(self, A: ArrayLike, theta: ArrayLike, n: ArrayLike) -> FloatArray:
        """``-sum[n ln lam - lam] + theta.theta/2`` with ``lam = b + L theta + A w``
        (floored). ``n`` ``(..., k)``, ``theta`` ``(..., r_full)``, ``A`` broadcastable to
        the leading shape."""
        na = np.asarray(n, dtype=float)
        th = np.asarray(theta, dtype=float)
        Aa = np.asarray(A, dtype=float)
        lam = np.maximum(self.b + th @ self.L.T + Aa[..., None] * self.w, LAM_FLOOR)
        out: FloatArray = -np.sum(xlogy(na, lam) - lam, axis=-1) + 0.5 * np.sum(th * th, axis=-1)
        return out

    def dnll_dA_rows(self, n2: FloatArray, A: FloatArray, th: FloatArray) -> FloatArray:
        """``dNLL/dA`` at ``(A, theta_c)``: ``w . (1 - n/lam)`` (floored bins give 0)."""
        lam = self.b + A[:, None] * self.w + th @ self.Lc.T
        lamf = np.maximum(lam, LAM_FLOOR)
        r = np.where(lam > LAM_FLOOR, 1.0 - n2 / lamf, 0.0)
        out: FloatArray = r @ self.w
        return out

    def sigma_A_rows(self, n2: FloatArray, A: FloatArray, th: FloatArray) -> FloatArray:
        """``sqrt([H^-1]_AA)`` of the observed information at ``(A, theta_c)``."""
        lam = self.b + A[:, None] * self.w + th @ self.Lc.T
        lamf = np.maximum(lam, LAM_FLOOR)
        D = np.where(lam > LAM_FLOOR, n2 / lamf**2, 0.0)
        P = self.G_full.shape[1]
        H = _hessian(D, self.GG_full) + self.prior_full * np.eye(P)
        e = np.zeros((n2.shape[0], P, 1))
        e[:, 0, 0] = 1.0
        with np.errstate(all="ignore"):
            try:
                var = np.linalg.solve(H, e)[:, 0, 0]
            except np.linalg.LinAlgError:
                var = np.array([_safe_var(h) for h in H])
        return np.where(np.isfinite(var) & (var > 0), np.sqrt(np.abs(var)), np.inf)

    def profile_rows(
        self,
        n2: FloatArray,
        A: ArrayLike,
        theta0: FloatArray | None = None,
        A_ref: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Profile ``theta_c`` at fixed ``A`` (``(T,)``) for rows ``n2`` ``(T, k)``.

        Warm start: ``theta0`` (profiled at ``A_ref`` if given, then shifted by the
        linear-Gaussian response ``-(A - A_ref) Lc^T V^-1 w``), else the GLS estimate.
        Returns the centred NLL, the compressed ``theta`` and the convergence flags.
        """
        T = n2.shape[0]
        Ab = np.broadcast_to(np.asarray(A, dtype=float), (T,))
        base = self.b + Ab[:, None] * self.w
        if theta0 is None:
            p0 = self.gls_theta(n2 - base)
        else:
            p0 = np.array(theta0, dtype=float)
            if A_ref is not None:
                p0 -= (Ab - A_ref)[:, None] * self.theta_slope()
        # Keep the start feasible: fall back to theta = 0 (lam = b + A w) otherwise.
        lam0 = base + p0 @ self.Lc.T
        bad = np.any(lam0 <= LAM_FLOOR, axis=1)
        if np.any(bad):
            p0[bad] = 0.0
        return minimise(n2, base, self.Lc, self.prior_theta, self.ridge_theta, p0, self.GG_theta)

    def profile(
        self, A: ArrayLike, n: ArrayLike, *, theta0: ArrayLike | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Minimise the NLL over ``theta`` at fixed ``A`` (broadcastable to ``n``'s leading
        shape). Returns ``(nll_min, theta_hat)``: the spec NLL of shape ``n.shape[:-1]``
        and ``theta`` of shape ``n.shape[:-1] + (r_full,)``."""
        n2, lead = self.rows(n)
        A2 = np.broadcast_to(np.asarray(A, dtype=float), lead).reshape(-1)
        th0 = None
        r_full = self.L.shape[1]
        if theta0 is not None:
            t0 = np.broadcast_to(np.asarray(theta0, dtype=float), (*lead, r_full))
            th0 = self.theta_compressed(t0.reshape(-1, r_full))
        f, th, _ = self.profile_rows(n2, A2, th0)
        return (f + self.const(n2)).reshape(lead), self.theta_full(th).reshape((*lead, r_full))

    def fit(self, n: ArrayLike, *, allow_negative: bool = True, need0: Need0 = "all") -> FitResult:
        """Joint maximum-likelihood fit of ``(A, theta)`` plus the profile at ``A = 0``.

        Starts from the GLS estimate ``A0 = w V^-1 (n - b) / w V^-1 w``,
        ``V = C + diag(max(b, 1))``, kept inside the physical region. With
        ``allow_negative=False`` the fit is restricted to ``A >= 0`` (exact for this convex
        problem: ``A_hat = 0`` when the free minimum is negative). ``need0``: rows on which
        the ``A = 0`` profile is computed: ``"all"`` (q0) or ``"negative"`` (only
        ``A_hat < 0``, all q~ needs; elsewhere ``f0`` is NaN). ``conv`` is False where the
        joint fit or the ``A = 0`` profile on that row did not converge.
        """
        n2, lead = self.rows(n)
        T = n2.shape[0]
        u = self.gls_vector()
        resid = n2 - self.b
        A0 = resid @ u / float(self.w @ u)
        # Start on the GLS estimate but inside the physical region (lam >= b/2 where w > 0).
        pos = self.w > 0
        A_lo = -0.5 * np.min(self.b[pos] / self.w[pos]) if np.any(pos) else -np.inf
        A0 = np.maximum(A0, A_lo)
        p0 = np.empty((T, self.r + 1))
        p0[:, 0] = A0
        p0[:, 1:] = self.gls_theta(resid - A0[:, None] * self.w)
        lam0 = self.b + p0 @ self.G_full.T
        bad = np.any(lam0 <= LAM_FLOOR, axis=1)
        if np.any(bad):
            p0[bad, 1:] = 0.0
        base = np.broadcast_to(self.b, n2.shape)
        f, p, conv = minimise(
            n2, base, self.G_full, self.prior_full, self.ridge_full, p0, self.GG_full
        )
        A = p[:, 0].copy()
        th = p[:, 1:].copy()
        # Profile at A = 0 (q~ when A_hat < 0, q0 when A_hat > 0, the A >= 0 restriction).
        rows = np.arange(T) if need0 == "all" else np.flatnonzero(A < 0)
        f0 = np.full(T, np.nan)
        th0 = np.full_like(th, np.nan) if need0 != "all" else np.empty_like(th)
        c0 = np.ones(T, dtype=bool)
        if rows.size:
            f0r, th0r, c0r = self.profile_rows(n2[rows], np.zeros(rows.size), th[rows], A[rows])
            f0[rows], th0[rows], c0[rows] = f0r, th0r, c0r
            # Convexity guard: the joint minimum can never be above a profile point.
            worse = rows[f0r < f[rows]]
            if worse.size:
                A[worse] = 0.0
                th[worse] = th0[worse]
                f[worse] = f0[worse]
        # f0 enters q0 (every row with need0="all") and q~ (rows with A_hat < 0): an A = 0
        # profile that stopped short leaves the row without a result, as the joint fit does.
        conv = conv & c0
        if not allow_negative:
            neg = A < 0
            A[neg] = 0.0
            th[neg] = th0[neg]
            f[neg] = f0[neg]
        sigma = self.sigma_A_rows(n2, A, th)
        return FitResult(
            A=A,
            sigma=sigma,
            f=f,
            f0=f0,
            theta_c=th,
            theta0_c=th0,
            conv=conv,
            const=self.const(n2),
            shape=lead,
            V=self.V,
        )

    # -- test statistics ---------------------------------------------------------------
    def qtilde(self, A: ArrayLike, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """q~_A: 0 if ``A_hat > A``; ``2[NLL(A) - NLL(A_hat)]`` if ``0 <= A_hat <= A``;
        ``2[NLL(A) - NLL(0)]`` if ``A_hat < 0`` (NLLs profiled over theta). ``A``
        broadcastable to ``n.shape[:-1]``; ``fit``: this model's fit of the same ``n``."""
        n2, lead = self.rows(n)
        A2 = np.broadcast_to(np.asarray(A, dtype=float), lead).reshape(-1).copy()
        f = self.fit(n2, need0="negative") if fit is None else fit
        fA, _, _ = self.profile_rows(n2, A2, f.theta_c, f.A)
        q, _ = qtilde_from(A2, f.A, f.f, f.f0, fA, np.zeros_like(fA))
        return q.reshape(lead)

    def q0(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Discovery statistic ``q0 = 2[NLL(0, theta^^) - NLL(A_hat, theta^)]`` if
        ``A_hat > 0``, else 0, of shape ``n.shape[:-1]``; ``fit``: this model's fit of the
        same ``n`` with the ``A = 0`` profile on every row (``need0="all"``)."""
        f = self.fit(n) if fit is None else fit
        q = np.where(f.A_hat > 0, 2.0 * (f.nll0 - f.nll_hat), 0.0)
        out: FloatArray = np.maximum(q, 0.0)
        return out


def qtilde_from(
    A: FloatArray,
    A_hat: FloatArray,
    f_hat: FloatArray,
    f0: FloatArray,
    fA: FloatArray,
    dfA: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """q~_A and dq~/dA per row from the fit (``A_hat``, centred NLLs ``f_hat`` and ``f0``,
    the latter needed where ``A_hat < 0``) and the profile ``fA``, ``dfA`` at ``A``."""
    ref = np.where(A_hat < 0.0, f0, f_hat)
    q = np.maximum(2.0 * (fA - ref), 0.0)
    dq = 2.0 * dfA
    zero = A_hat > A
    return np.where(zero, 0.0, q), np.where(zero, 0.0, dq)


def _safe_var(h: FloatArray) -> float:
    try:
        return float(np.linalg.solve(h, np.eye(h.shape[0])[:, 0])[0])
    except np.linalg.LinAlgError:
        return np.inf
