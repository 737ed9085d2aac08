"""CLs upper limits on the signal yield A (docs/method.md section 6).

Test statistic q~_A of Cowan, Cranmer, Gross and Vitells (2011), asymptotic CLs with both
branches, expected bands from the background-only Asimov data, and toy-based CLs.

Root searches are vectorised over toys: a safeguarded Newton iteration (bisection inside
the bracket when a step leaves it) on ``z(A) = Phi^-1(CLs(A)) - Phi^-1(alpha)``, whose
derivative is analytic: the profiled ``dNLL/dA`` is ``w . (1 - n / lam)`` at the profiled
``theta`` (envelope theorem), and the Asimov ``q_A(A)`` is a cubic Hermite interpolant of
exact values and derivatives (toys) or evaluated exactly (few rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicHermiteSpline
from scipy.special import log_ndtr, ndtr, ndtri

from .likelihood import (
    LAM_FLOOR,
    RANK_TOL,
    FitResult,
    WindowModel,
    _as_rows,
    _Fit,
    _sigma_A,
    fit_c,
    profile_c,
)
from .toys import SignalProcess, background_means

__all__ = [
    "BAND_N",
    "BAND_QUANTILES",
    "TOY_QUANTILES",
    "cls_asymptotic",
    "expected_limits_asymptotic",
    "expected_limits_toys",
    "qtilde",
    "upper_limit_asymptotic",
    "upper_limit_toys",
]

BAND_N = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
"""Expected-band positions in standard deviations (lo2, lo1, median, hi1, hi2)."""
BAND_QUANTILES = ndtr(BAND_N)
"""Quantiles of the toy limit distribution matching :data:`BAND_N` (2.3/15.9/50/84/97.7%)."""
TOY_QUANTILES = np.array([0.025, 0.16, 0.5, 0.84, 0.975])
"""Quantiles used for toy bands (docs/method.md: 2.5/16/50/84/97.5%)."""

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# --------------------------------------------------------------------------------------
# CLs formulas
# --------------------------------------------------------------------------------------


def _mills(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi(x) / Phi(x)`` computed stably."""
    return np.exp(-0.5 * x * x - _LOG_SQRT_2PI - log_ndtr(x))


def _log_cls(
    qt: NDArray[np.float64],
    qA: NDArray[np.float64],
    dqt: NDArray[np.float64] | None = None,
    dqA: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """``ln CLs`` (and its derivative when ``dqt``, ``dqA`` are given), both branches."""
    qt = np.maximum(np.asarray(qt, dtype=float), 0.0)
    qA = np.maximum(np.asarray(qA, dtype=float), 0.0)
    qt, qA = np.broadcast_arrays(qt, qA)
    u = np.sqrt(qt)
    v = np.sqrt(qA)
    vs = np.maximum(v, 1e-12)
    first = u <= v
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = (qt + qA) / (2.0 * vs)
        y = (qt - qA) / (2.0 * vs)
        l1 = log_ndtr(-u) - log_ndtr(v - u)
        l2 = log_ndtr(-x) - log_ndtr(-y)
    logcls = np.where(first, l1, l2)
    logcls = np.where(qA <= 0.0, 0.0, np.minimum(logcls, 0.0))
    if dqt is None or dqA is None:
        return logcls, None
    dqt, dqA = np.broadcast_arrays(np.asarray(dqt, float), np.asarray(dqA, float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        du = np.where(u > 0, dqt / (2.0 * np.maximum(u, 1e-300)), 0.0)
        dv = dqA / (2.0 * vs)
        d1 = -_mills(-u) * du - _mills(v - u) * (dv - du)
        dx = (dqt + dqA) / (2.0 * vs) - (qt + qA) * dv / (2.0 * vs * vs)
        dy = (dqt - dqA) / (2.0 * vs) - (qt - qA) * dv / (2.0 * vs * vs)
        d2 = -_mills(-x) * dx + _mills(-y) * dy
    dlog = np.where(first, d1, d2)
    dlog = np.where(qA <= 0.0, 0.0, dlog)
    return logcls, dlog


def cls_asymptotic(qt: ArrayLike, qA: ArrayLike) -> NDArray[np.float64] | float:
    """Asymptotic CLs from q~_A and the Asimov q_A (Cowan et al. 2011, both branches).

    ``sqrt q~ <= sqrt qA``: ``CLs = [1 - Phi(sqrt q~)] / Phi(sqrt qA - sqrt q~)``;
    otherwise ``CLs = [1 - Phi((q~ + qA)/(2 sqrt qA))] / [1 - Phi((q~ - qA)/(2 sqrt qA))]``.
    ``CLs = 1`` when ``qA = 0``.
    """
    out = np.exp(_log_cls(np.asarray(qt, float), np.asarray(qA, float))[0])
    return float(out) if out.ndim == 0 else out


def _z_of_log(
    logp: NDArray[np.float64], dlogp: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``z = Phi^-1(p)`` and ``dz`` from ``ln p`` and its derivative (stable for tiny p)."""
    logp = np.minimum(logp, np.log1p(-1e-15))
    small = logp < -700.0
    p = np.exp(np.where(small, -700.0, logp))
    z = np.where(small, -np.sqrt(-2.0 * np.minimum(logp, -1.0)), ndtri(p))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        dz_regular = np.exp(logp + 0.5 * z * z + _LOG_SQRT_2PI) * dlogp
        dz_small = dlogp / np.sqrt(-2.0 * np.minimum(logp, -1.0))
    return z, np.where(small, dz_small, dz_regular)


# --------------------------------------------------------------------------------------
# q~ and the Asimov q_A
# --------------------------------------------------------------------------------------


def _dnll_dA(win: WindowModel, n2, A, th) -> NDArray[np.float64]:
    """``dNLL/dA`` at ``(A, theta)``: ``w . (1 - n/lam)`` (floored bins contribute 0)."""
    lam = win.b + A[:, None] * win.w + th @ win.Lc.T
    lamf = np.maximum(lam, LAM_FLOOR)
    r = np.where(lam > LAM_FLOOR, 1.0 - n2 / lamf, 0.0)
    return r @ win.w


def _qtilde_rows(A, A_hat, f_hat, f0, fA, dfA):
    """q~_A and dq~/dA from the fit (centred NLLs) and the profile at A."""
    ref = np.where(A_hat < 0.0, f0, f_hat)
    q = np.maximum(2.0 * (fA - ref), 0.0)
    dq = 2.0 * dfA
    zero = A_hat > A
    return np.where(zero, 0.0, q), np.where(zero, 0.0, dq)


class _Asimov:
    """q_A(A) on background-only Asimov data ``n = b_asimov`` (exact or interpolated)."""

    def __init__(self, win: WindowModel, b_asimov: NDArray[np.float64] | None = None) -> None:
        self.win = win if b_asimov is None else win.with_background(b_asimov)
        self.n = self.win.b
        s0 = _sigma_A(self.win, self.n[None, :], np.zeros(1), np.zeros((1, self.win.r)))[0]
        self.sigma0 = float(s0) if np.isfinite(s0) else 1.0
        self._spline: CubicHermiteSpline | None = None
        self._amax = 0.0

    def exact(self, A: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        A = np.asarray(A, dtype=float)
        n2 = np.broadcast_to(self.n, (A.size, self.n.size))
        f, th, _ = profile_c(self.win, n2, A.reshape(-1))
        d = _dnll_dA(self.win, n2, A.reshape(-1), th)
        return (2.0 * f).reshape(A.shape), (2.0 * d).reshape(A.shape)

    def _build(self, amax: float) -> None:
        grid = np.linspace(0.0, amax, 129)
        q, dq = self.exact(grid)
        self._spline = CubicHermiteSpline(grid, q, dq)
        self._dspline = self._spline.derivative()
        self._amax = amax

    def __call__(self, A: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        A = np.asarray(A, dtype=float)
        amax = float(np.max(A)) if A.size else 0.0
        if self._spline is None or amax > self._amax:
            self._build(max(1.5 * amax, 12.0 * self.sigma0, 2.0 * self._amax))
        assert self._spline is not None
        return self._spline(A), self._dspline(A)


# --------------------------------------------------------------------------------------
# Vectorised safeguarded Newton root search
# --------------------------------------------------------------------------------------


def _rtsafe(
    evalf: Callable[[NDArray[np.intp], NDArray[np.float64]], tuple[NDArray, NDArray]],
    x0: NDArray[np.float64],
    scale: NDArray[np.float64],
    *,
    xtol: float,
    max_iter: int = 100,
) -> NDArray[np.float64]:
    """Root of decreasing ``h`` per row, ``x > 0``; ``evalf(idx, x) -> (h, dh/dx)``.

    Newton steps inside the bracket ``(lo, hi)`` (``lo = 0`` where ``h > 0`` by
    construction), bisection when a step leaves it, expansion until bracketed. Stops when
    the step is below ``xtol * x`` (the error of a Newton iterate is then ~step^2).
    """
    T = x0.size
    x = np.where(np.isfinite(x0) & (x0 > 0), x0, scale).astype(float)
    lo = np.zeros(T)
    hi = np.full(T, np.inf)
    out = np.full(T, np.nan)
    active = np.flatnonzero(np.isfinite(x) & (x > 0))
    for _ in range(max_iter):
        if active.size == 0:
            break
        xa = x[active]
        h, dh = evalf(active, xa)
        pos = h > 0
        lo_a = np.where(pos, np.maximum(lo[active], xa), lo[active])
        hi_a = np.where(pos, hi[active], np.minimum(hi[active], xa))
        lo[active], hi[active] = lo_a, hi_a
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - h / dh
        ok = np.isfinite(xn) & (dh < 0) & (xn > lo_a) & (xn < hi_a)
        fallback = np.where(
            np.isfinite(hi_a), 0.5 * (lo_a + hi_a), xa + np.maximum(xa, scale[active])
        )
        xn = np.where(ok, xn, fallback)
        done = (np.abs(xn - xa) <= xtol * np.abs(xn)) | (h == 0) | (hi_a - lo_a <= xtol * xn)
        done &= np.isfinite(xn)
        out[active[done]] = np.where(h[done] == 0, xa[done], xn[done])
        x[active] = xn
        active = active[~done]
    return out


def _gauss_guess(A_hat, sigma, alpha):
    """Constant-sigma limit ``A_hat + sigma Phi^-1(1 - alpha Phi(A_hat/sigma))``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        x0 = A_hat - sigma * ndtri(alpha * ndtr(A_hat / sigma))
    return np.maximum(x0, 0.05 * sigma)


def _upper_limits_rows(
    win: WindowModel,
    n2: NDArray[np.float64],
    fit: _Fit,
    asimov: _Asimov,
    alpha: float,
    rtol: float,
    exact_qA: bool,
) -> NDArray[np.float64]:
    z_alpha = float(ndtri(alpha))
    theta_ws = fit.th.copy()
    A_ws = fit.A.copy()

    def evalf(idx, A):
        fA, th, _ = profile_c(win, n2[idx], A, theta_ws[idx], A_ws[idx])
        theta_ws[idx] = th
        A_ws[idx] = A
        dfA = _dnll_dA(win, n2[idx], A, th)
        q, dq = _qtilde_rows(A, fit.A[idx], fit.f[idx], fit.f0[idx], fA, dfA)
        qA, dqA = asimov.exact(A) if exact_qA else asimov(A)
        lcls, dl = _log_cls(q, qA, dq, dqA)
        z, dz = _z_of_log(lcls, dl)
        return z - z_alpha, dz

    sigma = np.where(np.isfinite(fit.sigma), fit.sigma, asimov.sigma0)
    x0 = _gauss_guess(fit.A, sigma, alpha)
    return _rtsafe(evalf, x0, sigma, xtol=1e-2 * rtol)


def _fit_from_public(win: WindowModel, n2, fit: FitResult) -> _Fit:
    c = win.const(n2)
    A = np.asarray(fit.A_hat, dtype=float).reshape(-1)
    f = np.asarray(fit.nll_hat, dtype=float).reshape(-1) - c
    th = win.theta_compressed(np.asarray(fit.theta_hat, float).reshape(A.size, -1))
    if fit.nll0 is None or fit.theta0 is None:
        f0, th0, _ = profile_c(win, n2, np.zeros(A.size), th)
    else:
        f0 = np.asarray(fit.nll0, dtype=float).reshape(-1) - c
        th0 = win.theta_compressed(np.asarray(fit.theta0, float).reshape(A.size, -1))
    return _Fit(
        A=A,
        sigma=np.asarray(fit.sigma_A, dtype=float).reshape(-1),
        f=f,
        th=th,
        conv=np.asarray(fit.converged).reshape(-1),
        f0=f0,
        th0=th0,
    )


def _shape_out(x: NDArray[np.float64], lead: tuple[int, ...]):
    x = x.reshape(lead)
    return x.item() if x.ndim == 0 else x


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def qtilde(
    A: ArrayLike,
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    fit: FitResult | None = None,
    *,
    rank_tol: float = RANK_TOL,
) -> NDArray[np.float64] | float:
    """q~_A: 0 if ``A_hat > A``; ``2[NLL(A) - NLL(A_hat)]`` if ``0 <= A_hat <= A``;
    ``2[NLL(A) - NLL(0)]`` if ``A_hat < 0`` (NLLs profiled over theta).

    Vectorised: ``n`` ``(..., k)``, ``A`` broadcastable to ``n.shape[:-1]``. ``fit`` is an
    optional :func:`~gprpipe.stats.likelihood.fit_signal` result for the same ``n``.
    """
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    n2, lead = _as_rows(n)
    A2 = np.broadcast_to(np.asarray(A, dtype=float), lead).reshape(-1).copy()
    f = fit_c(win, n2, need0="negative") if fit is None else _fit_from_public(win, n2, fit)
    fA, _, _ = profile_c(win, n2, A2, f.th, f.A)
    q, _ = _qtilde_rows(A2, f.A, f.f, f.f0, fA, np.zeros_like(fA))
    return _shape_out(q, lead)


def upper_limit_asymptotic(
    n: ArrayLike,
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    alpha: float = 0.05,
    rtol: float = 1e-4,
    *,
    b_asimov: ArrayLike | None = None,
    fit: FitResult | None = None,
    rank_tol: float = RANK_TOL,
) -> NDArray[np.float64] | float:
    """Asymptotic CLs upper limit on ``A`` (CLs(A_up) = alpha), vectorised over toys.

    ``n`` ``(k,)`` gives a float, ``(T, k)`` an array of ``T`` limits (one root search for
    all rows at once). q_A comes from the background-only Asimov data ``n = b``
    (``b_asimov`` overrides it, e.g. ``b + L theta_hat(A=0)`` for pyhf's post-fit Asimov).
    Solved to relative precision well below ``rtol``; NaN where the fit has no information.
    """
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    n2, lead = _as_rows(n)
    f = fit_c(win, n2, need0="negative") if fit is None else _fit_from_public(win, n2, fit)
    asimov = _Asimov(win, None if b_asimov is None else np.asarray(b_asimov, float))
    exact = n2.shape[0] <= 16
    out = _upper_limits_rows(win, n2, f, asimov, alpha, rtol, exact)
    return _shape_out(out, lead)


def expected_limits_asymptotic(
    b: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    alpha: float = 0.05,
    *,
    rtol: float = 1e-4,
    rank_tol: float = RANK_TOL,
) -> NDArray[np.float64]:
    """Expected limits for ``N = -2, -1, 0, 1, 2`` from the background-only Asimov data.

    Solves ``CLs_exp(N) = Phi(N - sqrt qA(A)) / Phi(N) = alpha`` for each ``N`` by root
    finding on the exact Asimov ``q_A(A)``: ``sqrt qA(A) = N - Phi^-1(alpha Phi(N))``.
    The Asimov data are ``n = b``. pyhf's "post-fit" Asimov (nuisances fitted to the observed
    data at ``A = 0``) is obtained by passing ``b + L @ fit.theta0`` as ``b``.
    """
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    asimov = _Asimov(win)
    target = BAND_N - ndtri(alpha * ndtr(BAND_N))

    def evalf(idx, A):
        qA, dqA = asimov.exact(A)
        s = np.sqrt(np.maximum(qA, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            ds = np.where(s > 0, dqA / (2.0 * s), 0.0)
        return target[idx] - s, -ds

    sig = np.full(BAND_N.size, asimov.sigma0)
    return _rtsafe(evalf, target * sig, sig, xtol=1e-2 * rtol)


def upper_limit_toys(
    n_obs: ArrayLike,
    b: ArrayLike,
    C: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    alpha: float = 0.05,
    n_toys: int = 1000,
    rng: np.random.Generator | None = None,
    *,
    rtol: float = 1e-4,
    truncate: str = "clip",
    rank_tol: float = RANK_TOL,
) -> float:
    """Observed upper limit with toy-based CLs.

    At each tested ``A``: s+b toys ``n ~ Poisson(b_t + A w)`` and background-only toys
    ``n ~ Poisson(b_t)`` with ``b_t ~ N(b, C)`` truncated at 0;
    ``CLs = [(1 + #{q_sb >= q_obs}) / (N + 1)] / [(1 + #{q_b >= q_obs}) / (N + 1)]``.
    Common random numbers across ``A``: fixed background draws ``Poisson(b_t)`` plus signal
    counts from one Poisson-process realisation in ``A`` (:class:`~.toys.SignalProcess`),
    so ``CLs(A)`` is a deterministic step function; its crossing of ``alpha`` is bracketed
    from the asymptotic limit and bisected to ``rtol``.
    """
    rng = np.random.default_rng() if rng is None else rng
    win = WindowModel(b, L, w, rank_tol=rank_tol)
    n_obs2 = np.asarray(n_obs, dtype=float).reshape(1, -1)
    fit_obs = fit_c(win, n_obs2, need0="negative")
    N = int(n_toys)
    n_bkg_sb = rng.poisson(background_means(b, C, N, rng, L, truncate=truncate))
    signal = SignalProcess(win.w, N, rng)
    n_b = rng.poisson(background_means(b, C, N, rng, L, truncate=truncate)).astype(float)
    fit_b = fit_c(win, n_b, need0="negative")

    def q_rows(n2, f, A):
        A2 = np.full(n2.shape[0], A)
        fA, _, _ = profile_c(win, n2, A2, f.th, f.A)
        return _qtilde_rows(A2, f.A, f.f, f.f0, fA, np.zeros_like(fA))[0]

    cache: dict[float, float] = {}

    def cls_at(A: float) -> float:
        if A in cache:
            return cache[A]
        q_obs = q_rows(n_obs2, fit_obs, A)[0]
        n_sb = (n_bkg_sb + signal(A)).astype(float)
        q_sb = q_rows(n_sb, fit_c(win, n_sb, need0="negative"), A)
        q_b = q_rows(n_b, fit_b, A)
        tol = 1e-9 * max(1.0, q_obs)
        clsb = (1.0 + np.sum(q_sb >= q_obs - tol)) / (N + 1.0)
        clb = (1.0 + np.sum(q_b >= q_obs - tol)) / (N + 1.0)
        cache[A] = clsb / clb
        return cache[A]

    a0 = float(upper_limit_asymptotic(n_obs2[0], b, L, w, alpha, rtol, rank_tol=rank_tol))
    if not np.isfinite(a0) or a0 <= 0:
        return float("nan")
    lo, hi = a0, a0
    factor = 1.25
    if cls_at(a0) > alpha:
        for _ in range(60):
            hi *= factor
            if cls_at(hi) <= alpha:
                break
            lo = hi
        else:
            return float("nan")
    else:
        for _ in range(60):
            lo /= factor
            if cls_at(lo) > alpha:
                break
            hi = lo
        else:
            return 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if cls_at(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def expected_limits_toys(
    b: ArrayLike,
    C: ArrayLike,
    L: ArrayLike,
    w: ArrayLike,
    alpha: float = 0.05,
    n_toys: int = 10000,
    rng: np.random.Generator | None = None,
    *,
    rtol: float = 1e-4,
    quantiles: ArrayLike = TOY_QUANTILES,
    truncate: str = "clip",
    return_limits: bool = False,
    rank_tol: float = RANK_TOL,
) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Toy expected band: quantiles (2.5/16/50/84/97.5%) of per-toy asymptotic limits.

    Background-only toys ``n ~ Poisson(b_t)``, ``b_t ~ N(b, C)`` truncated at 0; each toy
    gets its own asymptotic CLs upper limit (vectorised root search over all toys). With
    ``return_limits=True`` also returns the per-toy limits.
    """
    rng = np.random.default_rng() if rng is None else rng
    n = rng.poisson(background_means(b, C, int(n_toys), rng, L, truncate=truncate))
    limits = np.asarray(
        upper_limit_asymptotic(n.astype(float), b, L, w, alpha, rtol, rank_tol=rank_tol)
    ).reshape(-1)
    bands = np.nanquantile(limits, np.asarray(quantiles, dtype=float))
    return (bands, limits) if return_limits else bands
