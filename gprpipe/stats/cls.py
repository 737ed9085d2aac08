"""CLs upper limits on the signal yield A (docs/method.md section 6): the calculators.

Test statistic q~_A of Cowan, Cranmer, Gross and Vitells (2011). Two calculators share one
interface (:class:`Calculator`, in the style of pyhf's ``infer.calculators``), chosen once
by name with :func:`calculator`:

* :class:`AsymptoticCalculator`: asymptotic CLs with both branches, expected bands from the
  background-only Asimov data;
* :class:`ToyCalculator`: toy-based CLs for the observed limit, toy expected bands
  (quantiles of per-toy asymptotic limits).

Both give ``upper_limit(n)``, ``expected_band()`` and ``p0(n)`` (asymptotic in both: the
discovery p-value has no toy variant here). Root searches are vectorised over toys: a
safeguarded Newton iteration (bisection inside the bracket when a step leaves it) on
``z(A) = Phi^-1(CLs(A)) - Phi^-1(alpha)``, whose derivative is analytic: the profiled
``dNLL/dA`` is ``w . (1 - n / lam)`` at the profiled ``theta`` (envelope theorem), and the
Asimov ``q_A(A)`` is a cubic Hermite interpolant of exact values and derivatives (toys) or
evaluated exactly (few rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicHermiteSpline
from scipy.special import log_ndtr, ndtr, ndtri

from .likelihood import BoolArray, FitResult, FloatArray, WindowModel, qtilde_from
from .significance import p_local, z_local
from .toys import SignalProcess, background_means

__all__ = [
    "BAND_N",
    "CALCULATORS",
    "TOY_QUANTILES",
    "AsymptoticCalculator",
    "Calculator",
    "ToyCalculator",
    "UnresolvedToyLimit",
    "band_relative_error",
    "calculator",
    "cls_asymptotic",
    "quantile_mc_error",
]

BAND_N = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
"""Expected-band positions in standard deviations (lo2, lo1, median, hi1, hi2)."""
TOY_QUANTILES = np.array([0.025, 0.16, 0.5, 0.84, 0.975])
"""Quantiles used for toy bands (docs/method.md: 2.5/16/50/84/97.5%); the asymptotic
bands sit at Phi(BAND_N), 2.28/97.72% at +-2, where the two give limits about 1% apart
(README, Method)."""
CALCULATORS = ("asymptotic", "toys")
"""Names accepted by :func:`calculator` (the config's ``limit.mode`` / ``limit.bands``)."""


_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


# --------------------------------------------------------------------------------------
# CLs formulas
# --------------------------------------------------------------------------------------


def _mills(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``phi(x) / Phi(x)`` computed stably."""
    out: FloatArray = np.exp(-0.5 * x * x - _LOG_SQRT_2PI - log_ndtr(x))
    return out


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


def cls_asymptotic(qt: ArrayLike, qA: ArrayLike) -> FloatArray:
    """Asymptotic CLs from q~_A and the Asimov q_A (Cowan et al. 2011, both branches).

    ``sqrt q~ <= sqrt qA``: ``CLs = [1 - Phi(sqrt q~)] / Phi(sqrt qA - sqrt q~)``;
    otherwise ``CLs = [1 - Phi((q~ + qA)/(2 sqrt qA))] / [1 - Phi((q~ - qA)/(2 sqrt qA))]``.
    ``CLs = 1`` when ``qA = 0``.
    """
    out: FloatArray = np.exp(_log_cls(np.asarray(qt, float), np.asarray(qA, float))[0])
    return out


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
# Vectorised safeguarded Newton root search
# --------------------------------------------------------------------------------------


def _rtsafe(
    evalf: Callable[[NDArray[np.intp], NDArray[np.float64]], tuple[FloatArray, FloatArray]],
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


# --------------------------------------------------------------------------------------
# The Asimov q_A
# --------------------------------------------------------------------------------------


class _Asimov:
    """q_A(A) on background-only Asimov data ``n = b_asimov`` (exact or interpolated)."""

    def __init__(self, model: WindowModel, b_asimov: FloatArray | None = None) -> None:
        self.model = model if b_asimov is None else model.with_background(b_asimov)
        self.n = self.model.b
        s0 = self.model.sigma_A_rows(self.n[None, :], np.zeros(1), np.zeros((1, self.model.r)))[0]
        self.sigma0 = float(s0) if np.isfinite(s0) else 1.0
        self._spline: CubicHermiteSpline | None = None
        self._dspline: CubicHermiteSpline | None = None
        self._amax = 0.0

    def exact(self, A: FloatArray) -> tuple[FloatArray, FloatArray]:
        A = np.asarray(A, dtype=float)
        n2 = np.broadcast_to(self.n, (A.size, self.n.size))
        f, th, _ = self.model.profile_rows(n2, A.reshape(-1))
        d = self.model.dnll_dA_rows(n2, A.reshape(-1), th)
        return (2.0 * f).reshape(A.shape), (2.0 * d).reshape(A.shape)

    def _build(self, amax: float) -> None:
        grid = np.linspace(0.0, amax, 129)
        q, dq = self.exact(grid)
        self._spline = CubicHermiteSpline(grid, q, dq)
        self._dspline = self._spline.derivative()
        self._amax = amax

    def __call__(self, A: FloatArray) -> tuple[FloatArray, FloatArray]:
        A = np.asarray(A, dtype=float)
        amax = float(np.max(A)) if A.size else 0.0
        if self._spline is None or amax > self._amax:
            self._build(max(1.5 * amax, 12.0 * self.sigma0, 2.0 * self._amax))
        assert self._spline is not None and self._dspline is not None
        return self._spline(A), self._dspline(A)


def _gauss_guess(A_hat: FloatArray, sigma: FloatArray, alpha: float) -> FloatArray:
    """Constant-sigma limit ``A_hat + sigma Phi^-1(1 - alpha Phi(A_hat/sigma))``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        x0 = A_hat - sigma * ndtri(alpha * ndtr(A_hat / sigma))
    out: FloatArray = np.maximum(x0, 0.05 * sigma)
    return out


# --------------------------------------------------------------------------------------
# Calculators
# --------------------------------------------------------------------------------------


class Calculator(Protocol):
    """What the limit step needs from a calculator of one window model."""

    model: WindowModel
    alpha: float

    def upper_limit(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Observed CLs upper limit on ``A`` of counts ``n``."""
        ...

    def upper_limit_with_error(
        self, n: ArrayLike, fit: FitResult | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """The observed limit and its Monte Carlo standard error (NaN without toys, and
        where the toys' error cannot be estimated)."""
        ...

    def expected_band(self) -> FloatArray:
        """Expected limits at the five band positions (lo2, lo1, median, hi1, hi2)."""
        ...

    def expected_band_with_error(self) -> tuple[FloatArray, FloatArray]:
        """The expected band and the Monte Carlo standard error of each position (NaN
        without toys)."""
        ...

    def p0(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Local discovery p-value of counts ``n``."""
        ...


def _p0(model: WindowModel, n: ArrayLike, fit: FitResult | None) -> FloatArray:
    return p_local(z_local(model.q0(n, fit)))


class AsymptoticCalculator:
    """Asymptotic CLs (Cowan et al. 2011) on one :class:`~.likelihood.WindowModel`.

    ``rtol``: relative precision of the limits (solved well below it). ``b_asimov``
    overrides the Asimov data of the observed limit's ``q_A`` (e.g. ``b + L theta_hat(A=0)``
    for pyhf's post-fit Asimov); the expected band always uses ``n = model.b``.
    """

    def __init__(
        self,
        model: WindowModel,
        *,
        alpha: float = 0.05,
        rtol: float = 1e-4,
        b_asimov: ArrayLike | None = None,
    ) -> None:
        self.model = model
        self.alpha = float(alpha)
        self.rtol = float(rtol)
        self.b_asimov = None if b_asimov is None else np.asarray(b_asimov, dtype=float)

    def upper_limit(
        self, n: ArrayLike, fit: FitResult | None = None, *, converged_only: bool = True
    ) -> FloatArray:
        """CLs(A_up) = alpha for counts ``n`` ``(..., k)``, shape ``n.shape[:-1]`` (one root
        search for all rows at once); NaN where the fit has no information, and (with
        ``converged_only``) where the profile at the limit stopped short of its minimum.
        ``fit``: this model's fit of the same ``n``."""
        m = self.model
        n2, lead = m.rows(n)
        f = m.fit(n2, need0="negative") if fit is None else fit
        asimov = _Asimov(m, self.b_asimov)
        exact = n2.shape[0] <= 16
        z_alpha = float(ndtri(self.alpha))
        theta_ws = f.theta_c.copy()
        A_ws = f.A.copy()
        conv_A = np.ones(n2.shape[0], dtype=bool)  # the last profile at A of each row

        def evalf(idx: NDArray[np.intp], A: FloatArray) -> tuple[FloatArray, FloatArray]:
            qA, dqA = asimov.exact(A) if exact else asimov(A)
            lcls, dl, th, c = _log_cls_rows(m, n2, f, idx, A, (qA, dqA), theta_ws[idx], A_ws[idx])
            theta_ws[idx] = th
            conv_A[idx] = c
            A_ws[idx] = A
            z, dz = _z_of_log(lcls, dl)
            return z - z_alpha, dz

        sigma = np.where(np.isfinite(f.sigma), f.sigma, asimov.sigma0)
        x0 = _gauss_guess(f.A, sigma, self.alpha)
        up = _rtsafe(evalf, x0, sigma, xtol=1e-2 * self.rtol)
        if converged_only:  # q~ there came from a profile that stopped short: no limit
            up = np.where(conv_A, up, np.nan)
        return up.reshape(lead)

    def upper_limit_with_error(
        self, n: ArrayLike, fit: FitResult | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """:meth:`upper_limit` and NaN: no toys, no Monte Carlo error."""
        up = self.upper_limit(n, fit)
        return up, np.full_like(up, np.nan)

    def expected_band_with_error(self) -> tuple[FloatArray, FloatArray]:
        """:meth:`expected_band` and NaN: no toys, no Monte Carlo error."""
        band = self.expected_band()
        return band, np.full_like(band, np.nan)

    def expected_band(self) -> FloatArray:
        """Expected limits for ``N = -2, -1, 0, 1, 2`` from the Asimov data ``n = b``.

        Solves ``CLs_exp(N) = Phi(N - sqrt qA(A)) / Phi(N) = alpha`` for each ``N`` by root
        finding on the exact Asimov ``q_A(A)``: ``sqrt qA(A) = N - Phi^-1(alpha Phi(N))``.
        """
        asimov = _Asimov(self.model)
        target = BAND_N - ndtri(self.alpha * ndtr(BAND_N))

        def evalf(idx: NDArray[np.intp], A: FloatArray) -> tuple[FloatArray, FloatArray]:
            qA, dqA = asimov.exact(A)
            s = np.sqrt(np.maximum(qA, 0.0))
            with np.errstate(divide="ignore", invalid="ignore"):
                ds = np.where(s > 0, dqA / (2.0 * s), 0.0)
            return target[idx] - s, -ds

        sig = np.full(BAND_N.size, asimov.sigma0)
        return _rtsafe(evalf, target * sig, sig, xtol=1e-2 * self.rtol)

    def p0(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Asymptotic local p-value ``1 - Phi(sqrt q0)``."""
        return _p0(self.model, n, fit)


class UnresolvedToyLimit(ValueError):
    """Too few background-only toys for a toy CLs limit: at the asymptotic limit, or a
    tested ``A`` in the search for the crossing, ``k_b`` of ``n_toys`` reach the observed
    test statistic, so ``CLs >= 1 / (1 + k_b)`` is not below ``alpha`` there, and any
    crossing further out is one of the toys' chance
    (a deficit makes ``CL_b`` small). ``needed``: the toys that would bring the floor down
    to ``alpha`` at a ``CL_b`` one Poisson standard deviation below this estimate (the
    estimate from so few toys is itself uncertain); a precise limit needs several times
    more: near the floor a handful of s+b toys decide it."""

    #: what a caller computed besides the observed limit before it failed (e.g. the fit,
    #: q0 and the expected band of :func:`~.combine.combined_limits`); empty when nothing
    partial: dict[str, float | FloatArray]

    def __init__(
        self, k_b: int, n_toys: int, alpha: float, where: str = "at the asymptotic limit"
    ) -> None:
        self.k_b, self.n_toys, self.alpha = k_b, n_toys, alpha
        self.partial = {}
        cl_b = (1 + k_b) / (n_toys + 1)
        low = max(1.0, 1 + k_b - np.sqrt(1 + k_b)) / (n_toys + 1)
        self.needed = int(np.ceil((1 / alpha) / low))
        than = ">" if (1 + k_b) * alpha < 1.0 - 1e-9 else "="
        super().__init__(
            f"{k_b} of {n_toys} background-only toys reach the observed q {where} "
            f"(CL_b {cl_b:.2g}), so CLs cannot fall below {1 / (1 + k_b):.2g} {than} "
            f"{alpha:g} there; the toys need at least {self.needed} (several times more "
            "for a precise limit)"
        )


class ToyCalculator:
    """Toy-based CLs on one :class:`~.likelihood.WindowModel`.

    Toys: background means ``b_t ~ N(b, C)`` (``C = L L^T`` of the model) truncated at 0
    (``truncate``: ``"clip"`` or ``"resample"``), counts ``Poisson(b_t)`` plus signal.
    ``n_toys`` for the observed limit, ``band_toys`` for the expected band, ``quantiles``
    of the band (2.5/16/50/84/97.5%), all drawn from ``rng``.
    """

    def __init__(
        self,
        model: WindowModel,
        *,
        alpha: float = 0.05,
        rtol: float = 1e-4,
        n_toys: int = 1000,
        band_toys: int = 10000,
        rng: np.random.Generator | None = None,
        truncate: str = "clip",
        quantiles: ArrayLike = TOY_QUANTILES,
    ) -> None:
        self.model = model
        self.alpha = float(alpha)
        self.rtol = float(rtol)
        self.n_toys = int(n_toys)
        self.band_toys = int(band_toys)
        self.rng = np.random.default_rng() if rng is None else rng
        self.truncate = truncate
        self.quantiles = np.asarray(quantiles, dtype=float)
        self.asymptotic = AsymptoticCalculator(model, alpha=alpha, rtol=rtol)

    def _toys(self, n_toys: int) -> FloatArray:
        m = self.model
        bt = background_means(m.b, None, n_toys, self.rng, m.L, truncate=self.truncate)
        out: FloatArray = self.rng.poisson(bt).astype(float)
        return out

    def upper_limit(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Observed limit of one window ``n`` ``(k,)`` (a 0-d array); see
        :meth:`upper_limit_with_error`."""
        return self.upper_limit_with_error(n, fit)[0]

    def upper_limit_with_error(
        self, n: ArrayLike, fit: FitResult | None = None
    ) -> tuple[FloatArray, FloatArray]:
        """Observed limit of one window ``n`` ``(k,)`` and its Monte Carlo standard error
        (0-d arrays).

        At each tested ``A``: s+b toys and background-only toys;
        ``CLs = [(1 + #{q_sb >= q_obs}) / (N + 1)] / [(1 + #{q_b >= q_obs}) / (N + 1)]``.
        Common random numbers across ``A``: fixed background draws plus signal counts from
        one Poisson-process realisation in ``A`` (:class:`~.toys.SignalProcess`), so
        ``CLs(A)`` is a deterministic step function; its crossing of ``alpha`` is bracketed
        from the asymptotic limit and bisected to ``rtol``. ``fit`` is not used (the
        observed fit here only needs the ``A = 0`` profile where ``A_hat < 0``).

        Monte Carlo error (:func:`_limit_mc_error`): the binomial errors of ``CL_s+b`` and
        ``CL_b`` where ``CLs`` crosses ``alpha``, ``p_b`` from the background-only toys there
        and ``p_sb = alpha p_b``, give ``dCLs / CLs``; divided by the slope of ``ln CLs(A)``
        there, taken from the asymptotic formula on the same data (smooth, where the toys'
        own step function holds a handful of counts), they give the error on ``A``. It
        draws no random numbers and evaluates no further toys. NaN where the limit is 0 or
        not finite, or that slope is not negative.
        """
        m, alpha, rtol = self.model, self.alpha, self.rtol
        n_obs2, _ = m.rows(np.asarray(n, dtype=float).reshape(1, -1))
        fit_obs = m.fit(n_obs2, need0="negative")
        N = self.n_toys
        n_bkg_sb = self._toys(N)
        signal = SignalProcess(m.w, N, self.rng)
        n_b = self._toys(N).astype(float)
        fit_b = m.fit(n_b, need0="negative")

        def q_rows(n2: FloatArray, f: FitResult, A: float) -> tuple[FloatArray, BoolArray]:
            A2 = np.full(n2.shape[0], A)
            fA, _, conv = m.profile_rows(n2, A2, f.theta_c, f.A)
            return qtilde_from(A2, f.A, f.f, f.f0, fA, np.zeros_like(fA))[0], conv & f.conv

        cache: dict[float, float] = {}
        above_b: dict[float, int] = {}  # background-only toys with q_b >= q_obs, per A
        # the observed q~ from a fit, or a profile at the limit's bracket, that stopped
        # short: no limit (as the asymptotic calculator); a toy's counts as drawn
        # (leaving it out would bias CLs)
        profiled: dict[float, bool] = {}  # the observed profile's convergence, per A

        def cls_at(A: float) -> float:
            if A in cache:
                return cache[A]
            q, ok = q_rows(n_obs2, fit_obs, A)
            q_obs, profiled[A] = q[0], bool(ok[0])
            n_sb = (n_bkg_sb + signal(A)).astype(float)
            q_sb = q_rows(n_sb, m.fit(n_sb, need0="negative"), A)[0]
            q_b = q_rows(n_b, fit_b, A)[0]
            tol = 1e-9 * max(1.0, q_obs)
            above_b[A] = int(np.sum(q_b >= q_obs - tol))
            # CLs >= 1 / (1 + k_b): where that floor is not below alpha, CLs can reach
            # alpha only by a chance count, however far out (a review: 60 toys gave a
            # limit 470 times the asymptotic one, k_b = 19 at alpha = 0.05, marked ok)
            if _at_floor(above_b[A], alpha):
                where = "at the asymptotic limit" if a0 == A else f"at A = {A:.4g} events"
                raise UnresolvedToyLimit(above_b[A], N, alpha, where)
            clsb = (1.0 + np.sum(q_sb >= q_obs - tol)) / (N + 1.0)
            clb = (1.0 + above_b[A]) / (N + 1.0)
            cache[A] = float(clsb / clb)
            return cache[A]

        a0 = float(self.asymptotic.upper_limit(n_obs2[0]))
        if np.isfinite(a0) and a0 > 0:
            cls_at(a0)
        lo, hi = _bisect_cls(cls_at, a0, alpha, rtol)
        a_up = 0.5 * (lo + hi)
        if not (bool(fit_obs.conv[0]) and profiled.get(lo, True) and profiled.get(hi, True)):
            return np.asarray(np.nan), np.asarray(np.nan)
        if not np.isfinite(a_up) or a_up <= 0:
            return np.asarray(a_up), np.asarray(np.nan)
        slope = -float(_log_cls_slope(m, n_obs2, fit_obs, a_up))
        err = _limit_mc_error(above_b[hi], N, alpha, slope)
        return np.asarray(a_up), np.asarray(err)

    def toy_limits(self) -> tuple[FloatArray, FloatArray]:
        """The expected band and the per-toy asymptotic limits of ``band_toys``
        background-only toys (one vectorised root search over all toys)."""
        n = self._toys(self.band_toys)
        # every toy's limit as found: a toy left out where a profile stopped short (in
        # windows of few events) would bias the band (a review: +12% on the median of a
        # window of 0.85 events per bin, its lowest toys lost)
        limits = self.asymptotic.upper_limit(n.astype(float), converged_only=False)
        limits = limits.reshape(-1)
        return np.nanquantile(limits, self.quantiles), limits

    def expected_band(self) -> FloatArray:
        """Quantiles (2.5/16/50/84/97.5%) of per-toy asymptotic limits."""
        return self.toy_limits()[0]

    def expected_band_with_error(self) -> tuple[FloatArray, FloatArray]:
        """:meth:`expected_band` and the Monte Carlo standard error of each quantile from
        the same toys (:func:`quantile_mc_error`)."""
        band, limits = self.toy_limits()
        return band, quantile_mc_error(limits, self.quantiles)

    def p0(self, n: ArrayLike, fit: FitResult | None = None) -> FloatArray:
        """Asymptotic local p-value ``1 - Phi(sqrt q0)`` (no toy variant)."""
        return _p0(self.model, n, fit)


def quantile_mc_error(samples: ArrayLike, q: ArrayLike) -> FloatArray:
    """Monte Carlo standard error of the quantiles ``q`` of ``samples`` (non-finite ones
    left out, as :func:`numpy.nanquantile` leaves NaN out): half the distance between the
    order statistics one binomial standard deviation ``sqrt(N q (1 - q))`` below and above
    rank ``N q``. It needs no density estimate and draws no random numbers; measured on
    the 2015 data against the spread between independent seeds: ratio 0.80-1.25 (each
    +-0.1) at the five band positions with 1,000 and 10,000 toys. NaN without samples."""
    x = np.sort(np.asarray(samples, dtype=float).reshape(-1))
    x = x[np.isfinite(x)]
    qq = np.asarray(q, dtype=float)
    if x.size == 0:
        return np.full(qq.shape, np.nan)
    d = np.sqrt(x.size * qq * (1 - qq))
    lo = np.clip(np.floor(x.size * qq - d).astype(int), 0, x.size - 1)
    hi = np.clip(np.ceil(x.size * qq + d).astype(int), 0, x.size - 1)
    out: FloatArray = 0.5 * (x[hi] - x[lo])
    return out


def band_relative_error(band: ArrayLike, err: ArrayLike) -> float:
    """The largest Monte Carlo error of a band's positions relative to their limits (one
    number for the band, the same in A and in eps^2); NaN when no position has an error
    (asymptotic bands)."""
    b, e = np.asarray(band, dtype=float), np.asarray(err, dtype=float)
    ok = np.isfinite(e) & np.isfinite(b) & (b > 0)
    return float(np.max(e[ok] / b[ok])) if ok.any() else float("nan")


def _at_floor(k_b: int, alpha: float) -> bool:
    """Whether ``k_b`` background-only toys at or above the observed q leave CLs no way
    below ``alpha`` but a chance count: its floor ``1 / (1 + k_b)`` is not below it
    (equal included: 20 x 0.05 is 1 in floating point)."""
    return (1 + k_b) * alpha <= 1.0 + 1e-9


def _limit_mc_error(k_b: int, n_toys: int, alpha: float, slope: float) -> float:
    """Standard error of a toy CLs limit: at the crossing ``CLs = alpha``, ``k_b`` of the
    ``n_toys`` background-only toys reach the observed q (``p_b = (1 + k_b) / (N + 1)``,
    ``p_sb = alpha p_b``; the two toy sets are independent), so
    ``dCLs / CLs = sqrt((1 - p_sb) / (N p_sb) + (1 - p_b) / (N p_b))``; ``slope``:
    ``-d ln CLs / dA`` there. NaN when ``slope`` is not positive."""
    if not slope > 0:
        return float("nan")
    p_b = (1.0 + k_b) / (n_toys + 1.0)
    p_sb = alpha * p_b
    rel = np.sqrt((1.0 - p_sb) / (n_toys * p_sb) + (1.0 - p_b) / (n_toys * p_b))
    return float(rel / slope)


def _log_cls_rows(
    model: WindowModel,
    n2: FloatArray,
    f: FitResult,
    idx: NDArray[np.intp],
    A: FloatArray,
    asimov_qA: tuple[FloatArray, FloatArray],
    theta0: FloatArray,
    A_ref: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    """Asymptotic ``ln CLs`` and ``d ln CLs / dA`` of rows ``idx`` of ``n2`` (``f`` their
    fit) at ``A``, given the Asimov ``(q_A, dq_A/dA)`` there; the profile starts from
    ``theta0`` at ``A_ref``, and its ``theta`` is returned for the next call's start, with
    the profile's convergence flags."""
    fA, th, conv = model.profile_rows(n2[idx], A, theta0, A_ref)
    dfA = model.dnll_dA_rows(n2[idx], A, th)
    q, dq = qtilde_from(A, f.A[idx], f.f[idx], f.f0[idx], fA, dfA)
    qA, dqA = asimov_qA
    lcls, dl = _log_cls(q, qA, dq, dqA)
    assert dl is not None
    return lcls, dl, th, conv


def _log_cls_slope(model: WindowModel, n2: FloatArray, fit: FitResult, A: float) -> float:
    """``d ln CLs / dA`` of the asymptotic formula at ``A`` for the one row ``n2`` (``fit``
    its fit)."""
    A1 = np.array([A])
    row = np.zeros(1, dtype=np.intp)
    asimov = _Asimov(model).exact(A1)
    return float(_log_cls_rows(model, n2, fit, row, A1, asimov, fit.theta_c, fit.A)[1][0])


def _bisect_cls(
    cls_at: Callable[[float], float], a0: float, alpha: float, rtol: float
) -> tuple[float, float]:
    """Crossing of ``CLs(A) = alpha`` bracketed from ``a0`` by factors 1.25, then bisected:
    the final bracket ``(lo, hi)``, ``CLs(lo) > alpha >= CLs(hi)``, both evaluated (NaN
    twice: no crossing; 0 twice: below every bracket)."""
    nan = float("nan")
    if not np.isfinite(a0) or a0 <= 0:
        return nan, nan
    lo, hi = a0, a0
    factor = 1.25
    if cls_at(a0) > alpha:
        for _ in range(60):
            hi *= factor
            if cls_at(hi) <= alpha:
                break
            lo = hi
        else:
            return nan, nan
    else:
        for _ in range(60):
            lo /= factor
            if cls_at(lo) > alpha:
                break
            hi = lo
        else:
            return 0.0, 0.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        if cls_at(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return lo, hi


def calculator(
    kind: str,
    model: WindowModel,
    *,
    alpha: float = 0.05,
    rtol: float = 1e-4,
    n_toys: int = 1000,
    band_toys: int = 10000,
    rng: np.random.Generator | None = None,
    truncate: str = "clip",
) -> Calculator:
    """The calculator named ``kind`` (:data:`CALCULATORS`) for ``model``; the toy settings
    are ignored by the asymptotic one."""
    if kind == "asymptotic":
        return AsymptoticCalculator(model, alpha=alpha, rtol=rtol)
    if kind == "toys":
        return ToyCalculator(
            model,
            alpha=alpha,
            rtol=rtol,
            n_toys=n_toys,
            band_toys=band_toys,
            rng=rng,
            truncate=truncate,
        )
    raise ValueError(f"calculator must be one of {CALCULATORS}, not {kind!r}")
