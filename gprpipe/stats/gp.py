"""Log-log Gaussian-process background fit at one test mass.

A Gaussian-process regression with kernel ``ConstantKernel * RBF`` and per-bin noise
``alpha_i = 1/y_i`` (1 for empty bins), trained on ``X = ln x``, ``Z = ln y`` (0 for empty
bins): the model of scikit-learn's ``GaussianProcessRegressor``, computed by gprpipe's own
code (scikit-learn is not needed at run time; the tests compare against it).
Hyperparameters maximise the log marginal likelihood (LML) with L-BFGS-B from several starts
(``_MultiStart``, which keeps sklearn's ``optimizer`` call signature):

* a warm start (the previous mass's solution, clipped into this mass's bounds) and/or a
  data-driven start (amplitude ``mean(Z**2)``, length scale in the upper part of its bounds);
* ``n_restarts`` seeded random starts, log-uniform within the bounds.

``restart_policy="always"`` runs every start and keeps the best. ``"auto"`` (default) does the
same for a cold fit (no ``start``); with a warm start it runs the other starts only when the
warm fit looks suspicious: the optimiser failed, the fit sat at its start point, it ended on
an amplitude bound, or one of the cheap value-only LML probes at the data-driven and random
start points is already clearly better than the fitted optimum. The best solution of a
converged fit is then polished by Newton steps on the analytic gradient (``_polish``), so that
the end point is set by the LML and not by rounding along the optimiser's path.

The LML, its analytic gradient and the posterior on the prediction points are the same
functions as scikit-learn's ``GaussianProcessRegressor`` computes (``normalize_y=False``;
``tests/test_stats_gp.py`` checks the equality). The smooth RBF kernel has a low numerical
rank, so by default they are computed exactly through a pivoted Cholesky factor
``R ~= F F^T`` of the RBF correlation matrix, truncated where the neglected part, weighted by the
inverse noise ``1/alpha_i``, sums to ``_LOWRANK_TOL`` (``logdet`` and the quadratic form are
then exact to that level), and the Woodbury identity / matrix determinant lemma with the
diagonal noise: ``O(n r^2)`` per evaluation instead of ``O(n^3)``. When the rank is not low
(short length scales) or the amplitude is so large that the factor's rounding matters, the
dense Cholesky computation is used (the restart runs of the optimiser follow the low-rank
value there and end on the exact one where they could win); ``method="dense"`` forces it.
Method notes:
docs/gp_lowrank.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_solve, cholesky, lapack, solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist, pdist, squareform

from .window import MIN_TRAIN_BINS, WindowMasks

__all__ = [
    "GPHyper",
    "GPOptions",
    "WindowFit",
    "fit_gp",
    "fit_window",
    "latent_mean_map",
    "length_scale_bounds",
    "log_targets",
    "lognormal_moments",
    "predict_counts",
    "predict_latent",
    "sigma_x",
]

_LOG_2PI = math.log(2.0 * math.pi)
_EXP_FLOOR = -700.0  # exp() below this is ~1e-304: clip to avoid slow denormals
_AMP_BOUND_FACTORS = (1e-3, 1e3)  # default amplitude bounds, relative to mean(Z**2)
_PG_TOL = 1e-2  # projected-gradient norm (LML per unit log-hyperparameter) accepted as optimal
_CLEARLY_BETTER = 0.5  # LML improvement that counts as a clearly better solution
_MOVE_TOL = 1e-8  # |delta theta| below this means the optimiser did not move
# L-BFGS-B runs on theta / _STEP_SCALE so that its first (unit-length) trial step moves
# ln(a), ln(l) by ~0.03 instead of 1: warm starts then converge in ~5 evaluations.
_STEP_SCALE = 0.03
# At ~1e-7 the LML is at its rounding noise; longer line searches there only waste evaluations.
_LBFGS_OPTIONS: dict[str, int] = {"maxls": 10}
_DIAG_BLOCK = 512  # prediction points per block of predict_counts_diag
_EIG_FLOOR = 1e-12  # latent posterior covariance: eigenvalue floor relative to the largest
# Low-rank computation. The pivoted Cholesky factor F of the RBF correlation matrix R stops
# when sum_i (a / alpha_i) d_i <= _LOWRANK_TOL, d = diag(R - F F^T): the neglected part of
# a R, relative to the noise, has trace at most _LOWRANK_TOL, which bounds the error of the
# log-determinant by _LOWRANK_TOL and the relative error of the quadratic form by about as much.
_LOWRANK_TOL = 1e-6
# d_i below this (relative to the amplitude) is rounding noise of the factor (about k * eps
# after k columns): it counts as zero and is never pivoted on (that would add noise columns).
# Prediction points (no noise) are pivoted until every d_i is below it.
_LOWRANK_FLOOR = 1e-14
# Where that rounding, weighted by the largest a / alpha_i, could exceed _LOWRANK_TOL (very
# large amplitudes), the dense computation is used instead.
_LOWRANK_MAX_WEIGHT = _LOWRANK_TOL / _LOWRANK_FLOOR
# The dense computation is also used when the factor would need more columns than this
# fraction of the training bins (the low-rank work, ~10 n r^2 flops, then loses to n^3/3).
_LOWRANK_MAX_FRAC = 0.5
# A start-point probe (LML above a level?) is decided by the low-rank value when it is clear of
# the level by this much (relative to max(1, |LML|)), 100x its worst error at large amplitudes;
# a restart run that ends there further below the best run than this keeps its low-rank value.
_PROBE_MARGIN = 1e-3
_METHODS = ("auto", "lowrank", "dense")
# Final Newton polish of the best L-BFGS-B solution (see _polish): at most this many steps,
# finite-difference step for the Hessian, step cap, allowed LML loss (relative), and the
# step length (in ln a, ln l) below which the solution counts as located.
_POLISH_STEPS = 4
_POLISH_H = 1e-4
_POLISH_MAX_STEP = 0.05
_POLISH_SLACK = 1e-7
_POLISH_XTOL = 1e-8


@dataclass(frozen=True)
class GPHyper:
    """Fitted hyperparameters of ``ConstantKernel(amplitude) * RBF(length_scale)``.

    ``lml`` is the log marginal likelihood at the solution, ``n_evals`` the number of LML
    evaluations spent, ``reason`` empty when ``converged`` and a short cause otherwise.
    """

    amplitude: float
    length_scale: float
    lml: float
    converged: bool
    n_evals: int
    reason: str

    @property
    def theta(self) -> np.ndarray:
        """sklearn's log-space hyperparameter vector ``[ln amplitude, ln length_scale]``."""
        return np.log([self.amplitude, self.length_scale])

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], i: int) -> GPHyper:
        """Row ``i`` of per-mass arrays ``gp_amplitude``, ``gp_length_scale``, ``gp_lml``,
        ``gp_converged`` (and ``gp_reason`` when present), as fit.h5 and refits store them."""
        reason = arrays.get("gp_reason")
        return cls(
            float(arrays["gp_amplitude"][i]),
            float(arrays["gp_length_scale"][i]),
            float(arrays["gp_lml"][i]),
            bool(arrays["gp_converged"][i]),
            0,
            "" if reason is None else str(reason[i]),
        )


@dataclass(frozen=True)
class GPOptions:
    """How the hyperparameters are fitted at one mass.

    ``ls_bounds``: RBF length-scale bounds (ln-mass units, :func:`length_scale_bounds`);
    ``amp_bounds`` default to ``mean(Z**2) * (1e-3, 1e3)``; ``n_restarts`` seeded random
    starts; ``restart_policy`` ``"auto"`` or ``"always"`` (module docstring); ``maxiter`` of
    each L-BFGS-B run (a restart continued on the exact LML has it twice); ``method`` of the
    LML and posterior: ``"auto"`` (low-rank, dense when the rank is high), ``"lowrank"`` or
    ``"dense"``.
    """

    ls_bounds: tuple[float, float]
    n_restarts: int = 2
    amp_bounds: tuple[float, float] | None = None
    restart_policy: str = "auto"
    maxiter: int = 200
    method: str = "auto"


@dataclass(frozen=True)
class WindowFit:
    """GP fit at one test mass; ``b`` and ``C`` are on the blind bins (``edges`` order)."""

    hyper: GPHyper
    blind: np.ndarray
    train: np.ndarray
    b: np.ndarray
    C: np.ndarray
    mu: np.ndarray = field(repr=False)
    S: np.ndarray = field(repr=False)


# --------------------------------------------------------------------------------------------
# Bounds and targets
# --------------------------------------------------------------------------------------------
def sigma_x(mass: ArrayLike, sigma: ArrayLike) -> np.ndarray:
    """Resolution in ln-mass units, ``ln(1 + sigma/m)``."""
    out: np.ndarray = np.log1p(np.asarray(sigma, dtype=float) / np.asarray(mass, dtype=float))
    return out


def length_scale_bounds(
    sigma_x: float,
    sigma_x_scan_median: float,
    lo_factor: float = 0.5,
    hi_factor: float = 8.0,
    floor_factor: float = 1.0,
) -> tuple[float, float]:
    """RBF length-scale bounds in ln-mass units.

    ``lo = lo_factor * sigma_x``; ``hi = max(hi_factor * sigma_x,
    hi_factor * sigma_x_scan_median * floor_factor)``.
    """
    lo = lo_factor * float(sigma_x)
    hi = max(hi_factor * float(sigma_x), hi_factor * float(sigma_x_scan_median) * floor_factor)
    if not 0 < lo < hi:
        raise ValueError(f"invalid length-scale bounds ({lo}, {hi})")
    return lo, hi


def log_targets(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(X, Z, alpha)``: ``ln x``, ``ln y`` (0 if empty), ``1/y`` (1 if empty)."""
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError("x and y must have the same length")
    if np.any(xa <= 0):
        raise ValueError("bin centres must be positive for the log-log GP")
    if np.any(ya < 0):
        raise ValueError("counts must be non-negative")
    full = ya > 0
    safe = np.where(full, ya, 1.0)
    return np.log(xa), np.where(full, np.log(safe), 0.0), np.where(full, 1.0 / safe, 1.0)


# --------------------------------------------------------------------------------------------
# Log marginal likelihood
# --------------------------------------------------------------------------------------------
def _pivoted_cholesky(
    X: np.ndarray, ell: float, weight: np.ndarray, tol: float, rmax: int, n_pred: int = 0
) -> np.ndarray | None:
    """Greedy pivoted Cholesky of the RBF correlation ``R_ij = exp(-(X_i-X_j)^2 / 2 ell^2)``.

    Returns ``Ft`` (r x len(X)) with ``R ~= Ft^T Ft``, or None if more than ``rmax`` columns
    would be needed. The first ``len(X) - n_pred`` points are pivoted on the largest weighted
    residual ``weight_i d_i`` until ``sum_i weight_i d_i <= tol`` (``d`` is the diagonal of
    ``R - Ft^T Ft``, zeroed below ``_LOWRANK_FLOOR``); the last ``n_pred`` points (no weight)
    then on the largest ``d_i`` until all are zero. Pivot rows of the residual are exactly zero.
    """
    n_all = len(X)
    n = n_all - n_pred
    rmax = min(rmax, n_all)
    Ft = np.empty((rmax, n_all))
    d = np.ones(n_all)
    wd = np.empty(n)
    c = -0.5 / (ell * ell)
    sq = np.empty(n_all)
    low = np.empty(n_all, dtype=bool)
    for k in range(rmax + 1):
        np.multiply(weight, d[:n], out=wd)
        if wd.sum() > tol:
            p = int(wd.argmax())
        elif n_pred and d[n:].max() > 0.0:
            p = n + int(d[n:].argmax())
        else:
            return Ft[:k]
        if k == rmax:
            return None
        row = Ft[k]
        np.subtract(X, X[p], out=row)
        row *= row
        row *= c
        np.exp(row, out=row)
        if k:
            row -= Ft[:k, p] @ Ft[:k]
        row *= 1.0 / math.sqrt(d[p])
        np.multiply(row, row, out=sq)
        d -= sq
        d[p] = 0.0
        np.less(d, _LOWRANK_FLOOR, out=low)
        np.copyto(d, 0.0, where=low)
    return None  # pragma: no cover - the loop returns


def _woodbury_solve(Vt: np.ndarray, L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(I + V V^T)^-1 b = b - V (I+G)^-1 V^T b`` with ``L L^T = I + G``, ``G = V^T V``."""
    c, _ = lapack.dtrtrs(L, Vt @ b, lower=1)
    w, _ = lapack.dtrtrs(L, c, lower=1, trans=1)
    out: np.ndarray = b - Vt.T @ w
    return out


class _LogMarginal:
    """Negative LML of ``a * RBF(l) + diag(alpha)`` and its gradient in ``(ln a, ln l)``.

    The same function as sklearn's ``log_marginal_likelihood`` (``normalize_y=False``).
    ``method="auto"`` computes it through the low-rank factor (``_lowrank``) and falls back to
    the dense Cholesky (``_dense``) when the rank exceeds ``_LOWRANK_MAX_FRAC * n`` or the
    amplitude is so large that the factor's rounding could exceed the tolerance;
    ``"lowrank"`` lifts the rank limit, ``"dense"`` always takes the dense path.
    ``n_dense`` counts the evaluations that took the dense path.
    """

    def __init__(self, X: np.ndarray, Z: np.ndarray, alpha: np.ndarray, method: str = "auto"):
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.X = np.ascontiguousarray(X, dtype=float)
        self.Z = np.ascontiguousarray(Z, dtype=float)
        self.alpha = np.ascontiguousarray(alpha, dtype=float)
        self.n = len(self.Z)
        self.method = method
        self.rmax = self.n if method == "lowrank" else int(_LOWRANK_MAX_FRAC * self.n)
        self.inv_alpha = 1.0 / self.alpha
        self.max_inv_alpha = float(self.inv_alpha.max())
        self.Zt = self.Z * np.sqrt(self.inv_alpha)  # whitened targets D^-1/2 Z
        self.logdet_alpha = float(np.log(self.alpha).sum())
        self._d2: np.ndarray | None = None
        self.n_evals = 0
        self.n_dense = 0
        self.n_reused = 0
        self._last: tuple[bytes, Any] | None = None  # (theta, value and gradient) of the last call

    @property
    def d2(self) -> np.ndarray:
        """Squared distances ``(X_i - X_j)^2`` (dense path only, built on first use)."""
        if self._d2 is None:
            d = self.X[:, None] - self.X[None, :]
            self._d2 = d * d
        return self._d2

    def __call__(self, theta: np.ndarray, eval_gradient: bool = True) -> Any:
        """Return ``-lml`` (and ``-grad`` if ``eval_gradient``); ``inf`` if K is not PD.

        The polish (:func:`_polish`) usually starts where L-BFGS-B last evaluated: the same
        ``theta`` as the previous call (bit for bit) returns that call's result (a copy)."""
        key = np.asarray(theta, dtype=float).tobytes()
        if eval_gradient and self._last is not None and self._last[0] == key:
            self.n_reused += 1
            v, g = self._last[1]
            return v, g.copy()
        out = self._value(theta, eval_gradient)
        if eval_gradient:  # a pure function of theta: an older entry stays right
            self._last = (key, (out[0], out[1].copy()))
        return out

    def _value(self, theta: np.ndarray, eval_gradient: bool, guard: bool = True) -> Any:
        """The low-rank value (``guard``: only where it is exact), else the dense one."""
        self.n_evals += 1
        out = self._lowrank(theta, eval_gradient, guard) if self.method != "dense" else None
        if out is None:
            self.n_dense += 1
            out = self._dense(theta, eval_gradient)
        return out

    def rough(self, theta: np.ndarray, eval_gradient: bool = True) -> Any:
        """As a call, but under ``"auto"`` by the low-rank path also at the large amplitudes
        where its rounding (~1e-5 relative at worst) makes it unfit for a final answer: for
        the start-point probes (:meth:`exceeds`) and the restart runs, whose end is computed
        again exactly when it could win
        (:meth:`_MultiStart._restart`). Equal to a call wherever :meth:`inexact` is False."""
        if self.method != "auto":
            return self(theta, eval_gradient)
        return self._value(theta, eval_gradient, guard=False)

    def inexact(self, theta: np.ndarray) -> bool:
        """Whether :meth:`rough` may differ from a call at ``theta`` (amplitude too large)."""
        return self.method == "auto" and (
            math.exp(theta[0]) * self.max_inv_alpha > _LOWRANK_MAX_WEIGHT
        )

    def exceeds(self, theta: np.ndarray, level: float) -> bool:
        """Whether the LML at ``theta`` exceeds ``level``, as the exact value would say.

        The start-point probes only need this comparison. Under ``"auto"`` the low-rank value
        decides it also at the large amplitudes where its rounding (~1e-5 relative at worst)
        makes it unfit for a final answer, if it is clear of ``level`` by more than
        ``_PROBE_MARGIN`` (absolute, or relative to the LML); otherwise the exact value does.
        """
        v = self.rough(theta, False)
        if self.inexact(theta) and abs(-v - level) <= _PROBE_MARGIN * max(1.0, abs(v)):
            v = self(theta, False)  # too close to call: the exact value decides
        return bool(-v > level)

    def _lowrank(self, theta: np.ndarray, eval_gradient: bool, guard: bool = True) -> Any:
        """Exact LML via ``K = D^1/2 (I + V V^T) D^1/2``, ``V = sqrt(a) D^-1/2 F`` (n x r).

        Woodbury: ``(I + V V^T)^-1 = I - V (I+G)^-1 V^T`` with ``G = V^T V = L L^T - I``;
        determinant lemma: ``logdet K = sum ln alpha + 2 sum ln diag L``. With
        ``rho = (I + V V^T)^-1 Zt`` (``= D^1/2 K^-1 Z``) the quadratic form is
        ``Z^T K^-1 Z = |rho|^2 + |V^T rho|^2``, a sum of squares without cancellation.
        """
        a = math.exp(theta[0])
        ell = math.exp(theta[1])
        if guard and a * self.max_inv_alpha > _LOWRANK_MAX_WEIGHT:
            return None
        Ft = _pivoted_cholesky(self.X, ell, a * self.inv_alpha, _LOWRANK_TOL, self.rmax)
        if Ft is None:
            return None
        r = Ft.shape[0]
        Vt = Ft * np.sqrt(a * self.inv_alpha)  # V^T, r x n
        if eval_gradient:
            # Column k of V is localised around its pivot: centre X there (at its V^2-weighted
            # mean c_k) so that the expansion of (X_i - X_j)^2 below cancels little.
            V2 = Vt * Vt
            Yt = self.X - ((V2 @ self.X) / V2.sum(axis=1))[:, None]  # X - c_k, r x n
            S = np.empty((3 * r, self.n))  # rows: V^T, Vy = V^T o Y, Vy2 = Vy o Y
            S[:r] = Vt
            Vy = np.multiply(Vt, Yt, out=S[r : 2 * r])
            Vy2 = np.multiply(Vy, Yt, out=S[2 * r :])
            # G = V^T V, H1[j, k] = sum_i V_ij Y_ki V_ik, H2 likewise with Y^2: one product
            GH = Vt @ S.T
            G, H1, H2 = GH[:, :r], GH[:, r : 2 * r], GH[:, 2 * r :]
        else:
            G = Vt @ Vt.T
        IG = G.copy()
        IG.flat[:: r + 1] += 1.0
        L, info = lapack.dpotrf(IG, lower=1, clean=1)
        if info != 0:
            return None
        rho = _woodbury_solve(Vt, L, self.Zt)
        # one step of iterative refinement: (I + V V^T) rho = Zt is solved through I + G,
        # whose condition number (up to ~1e9) would otherwise leave ~1e-8 relative noise
        Vrho = Vt @ rho
        rho += _woodbury_solve(Vt, L, self.Zt - rho - Vt.T @ Vrho)
        Vrho = Vt @ rho
        quad = float(rho @ rho) + float(Vrho @ Vrho)
        logdet = self.logdet_alpha + 2.0 * float(np.log(np.diagonal(L)).sum())
        lml = -0.5 * quad - 0.5 * logdet - 0.5 * self.n * _LOG_2PI
        if not eval_gradient:
            return -lml
        # With W = V L^-T (so that (I+M)^-1 = I - W W^T): W^T V = L^-1 G = L^T - L^-1,
        # W^T (Y_k^m o v_k) = (L^-1 H_m)[:, k], tr(W^T W) = tr((I+G)^-1 G) = r - |L^-1|_F^2.
        Li, _ = lapack.dtrtri(L, lower=1)
        A0 = L.T - Li
        A1 = Li @ H1
        A2 = Li @ H2
        # d/dln a: 0.5 [rho^T M rho - tr((I+M)^-1 M)],  M = V V^T
        g_amp = 0.5 * (float(Vrho @ Vrho) - (r - float(np.vdot(Li, Li))))
        # d/dln l: 0.5 [rho^T M_P rho - tr((I+M)^-1 M_P)],  M_P = M o (X_i - X_j)^2 / l^2
        # = sum_k (v_k v_k^T) o (Y_ki - Y_kj)^2 / l^2; expanding the square per column k turns
        # both terms into products with V:  x^T [(v v^T) o (Y_i - Y_j)^2] x
        # = 2 (x . Y^2 v)(x . v) - 2 (x . Y v)^2, and likewise for the trace with W.
        quad_p = float((Vy2 @ rho) @ Vrho) - float(np.sum((Vy @ rho) ** 2))
        tr_p = float(np.vdot(A2, A0)) - float(np.vdot(A1, A1))
        g_ls = (quad_p + tr_p) / (ell * ell)
        return -lml, -np.array([g_amp, g_ls])

    def _dense(self, theta: np.ndarray, eval_gradient: bool) -> Any:
        """Dense path: one Cholesky and one ``potri`` of the n x n matrix."""
        a = math.exp(theta[0])
        ell = math.exp(theta[1])
        n = self.n
        d2 = self.d2
        R = np.multiply(d2, -0.5 / (ell * ell))
        np.maximum(R, _EXP_FLOOR, out=R)
        np.exp(R, out=R)
        K = np.multiply(R, a)
        K.flat[:: n + 1] += self.alpha
        # K is symmetric, so its C-order buffer read as Fortran order is K itself: no copy.
        L, info = lapack.dpotrf(K.T, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            return (np.inf, np.zeros(2)) if eval_gradient else np.inf
        alpha_v, _ = lapack.dpotrs(L, self.Z, lower=1)
        zka = float(self.Z @ alpha_v)
        lml = -0.5 * zka - float(np.log(np.diagonal(L)).sum()) - 0.5 * n * _LOG_2PI
        if not eval_gradient:
            return -lml
        Kinv, info = lapack.dpotri(L, lower=1, overwrite_c=1)  # lower triangle; upper is 0
        if info != 0:
            return np.inf, np.zeros(2)
        kdiag = np.diagonal(Kinv)
        # d/dln a:  0.5 tr[(aa^T - K^-1) (K - D)]
        g_amp = 0.5 * (zka - float(alpha_v**2 @ self.alpha) - n + float(kdiag @ self.alpha))
        # d/dln l:  0.5 tr[(aa^T - K^-1) a R o d2 / l^2]
        np.multiply(R, d2, out=R)  # P = R o d2, symmetric with zero diagonal
        quad = float(alpha_v @ (R @ alpha_v))
        # Kinv.T is C-contiguous with the lower triangle of K^-1 in its upper part (rest 0)
        tr = 2.0 * float(np.vdot(Kinv.T, R))
        g_ls = 0.5 * a / (ell * ell) * (quad - tr)
        return -lml, -np.array([g_amp, g_ls])


# --------------------------------------------------------------------------------------------
# Multi-start optimiser (sklearn ``optimizer`` callable)
# --------------------------------------------------------------------------------------------
@dataclass
class _Run:
    start: np.ndarray
    theta: np.ndarray
    lml: float
    success: bool
    message: str
    pg_norm: float
    moved: float
    label: str

    @property
    def ok(self) -> bool:
        """Locally optimal: the optimiser succeeded or the projected gradient is ~0."""
        return bool(np.isfinite(self.lml)) and (self.success or self.pg_norm <= _PG_TOL)

    @property
    def stuck(self) -> bool:
        """Sat at its start point although the start was not a stationary point."""
        return self.moved < _MOVE_TOL and self.pg_norm > _PG_TOL


def _projected_grad_norm(theta: np.ndarray, grad: np.ndarray, bounds: np.ndarray) -> float:
    """Infinity norm of the projected gradient of the minimised function."""
    g = np.array(grad, dtype=float)
    at_lo = theta <= bounds[:, 0] + 1e-10
    at_hi = theta >= bounds[:, 1] - 1e-10
    g[at_lo & (g > 0)] = 0.0
    g[at_hi & (g < 0)] = 0.0
    return float(np.max(np.abs(g))) if np.all(np.isfinite(g)) else np.inf


class _MultiStart:
    """Seeded multi-start L-BFGS-B on the LML (called with sklearn's optimizer protocol)."""

    def __init__(
        self,
        lml: _LogMarginal,
        *,
        warm: np.ndarray | None,
        data_start: np.ndarray,
        n_restarts: int,
        seed: int,
        policy: str,
        maxiter: int,
    ):
        self.f = lml
        self.warm = warm
        self.data_start = data_start
        self.n_restarts = int(n_restarts)
        self.seed = int(seed)
        self.policy = policy
        self.maxiter = maxiter
        self.runs: list[_Run] = []
        self.best: _Run | None = None
        self.converged = False
        self.reason = ""

    def _local(self, x0: np.ndarray, bounds: np.ndarray, label: str, rough: bool = False) -> _Run:
        s = _STEP_SCALE
        f = self.f.rough if rough else self.f

        def fs(u: np.ndarray) -> tuple[float, np.ndarray]:
            v, g = f(u * s)
            return v, g * s

        res = minimize(
            fs,
            x0 / s,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds / s,
            options={"maxiter": self.maxiter, **_LBFGS_OPTIONS},
        )
        theta = np.clip(np.asarray(res.x, dtype=float) * s, bounds[:, 0], bounds[:, 1])
        jac = np.asarray(getattr(res, "jac", np.full(2, np.inf)), dtype=float) / s
        run = _Run(
            start=np.array(x0, dtype=float),
            theta=theta,
            lml=-float(res.fun),
            success=bool(res.success),
            message=str(res.message),
            pg_norm=_projected_grad_norm(theta, jac, bounds),
            moved=float(np.max(np.abs(theta - x0))),
            label=label,
        )
        self.runs.append(run)
        return run

    def _suspicious(self, run: _Run, bounds: np.ndarray) -> str:
        if not np.isfinite(run.lml):
            return "non-finite LML"
        if run.stuck:
            return "stuck at start"
        if not run.ok:
            return f"optimizer failed ({run.message})"
        if run.theta[0] <= bounds[0, 0] + 1e-6 or run.theta[0] >= bounds[0, 1] - 1e-6:
            return "amplitude at bound"
        return ""

    def _restart(self, x0: np.ndarray, bounds: np.ndarray, label: str) -> None:
        """A run from another start point. Random starts often lie at amplitudes where only
        the dense computation is exact (30x slower): the run goes by the rough LML, and if it
        ends there and not clearly below the best run so far, it goes on from its end point
        with the exact LML, which then stands for it. Its end is thus exact wherever it could
        be chosen."""
        best = max((r.lml for r in self.runs if not math.isnan(r.lml)), default=-math.inf)
        run = self._local(x0, bounds, label, rough=True)
        margin = _PROBE_MARGIN * max(1.0, abs(run.lml))
        if not self.f.inexact(run.theta) or run.lml <= best - margin:
            return  # exact where it ended, or clearly below the best (NaN: continued)
        self.runs.pop()
        exact = self._local(run.theta, bounds, label)
        exact.start = run.start
        exact.moved = float(np.max(np.abs(exact.theta - run.start)))

    def __call__(
        self, obj_func: object, initial_theta: ArrayLike, bounds: ArrayLike
    ) -> tuple[np.ndarray, float]:
        """sklearn's optimizer protocol; ``obj_func`` is unused: ``self.f`` is the objective."""
        bounds = np.asarray(bounds, dtype=float)
        lo_hi = bounds
        rng = np.random.default_rng(self.seed)
        randoms = [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]

        def clip(t: ArrayLike) -> np.ndarray:
            out: np.ndarray = np.clip(np.asarray(t, dtype=float), lo_hi[:, 0], lo_hi[:, 1])
            return out

        primary = clip(self.warm) if self.warm is not None else clip(self.data_start)
        first = self._local(primary, bounds, "warm" if self.warm is not None else "data")
        others: list[tuple[np.ndarray, str]] = []
        if self.warm is not None:
            others.append((clip(self.data_start), "data"))
        others += [(r, f"random{i}") for i, r in enumerate(randoms)]

        trigger = ""
        if self.policy == "always":
            trigger = "policy"
        elif self.warm is None:
            trigger = "cold start"  # the first fit of a chain seeds the rest: run every start
        elif others:
            trigger = self._suspicious(first, bounds)
            if not trigger:
                # Cheap global check: LML values (no gradient) at the other start points.
                for x0, label in others:
                    if self.f.exceeds(x0, first.lml + _CLEARLY_BETTER):
                        trigger = f"probe {label} better"
                        break
        if trigger:
            for x0, label in others:
                self._restart(x0, bounds, label)

        # Best LML wins (ties: earliest start). Because every run that was made is a candidate,
        # no other start can end clearly better than the chosen one; with a warm start in
        # "auto" mode the probes above are what checks the starts that were not run.
        def rank(i: int) -> tuple[float, int]:
            lml = self.runs[i].lml
            return (math.inf if math.isnan(lml) else -lml, i)

        order = sorted(range(len(self.runs)), key=rank)
        best = self.runs[order[0]]
        self.best = best
        reasons = []
        if not np.isfinite(best.lml):
            reasons.append("no finite LML")
        elif best.stuck:
            reasons.append("best solution sits at its start point")
        elif not best.ok:
            reasons.append(f"optimizer failed: {best.message}")
        self.converged = not reasons
        self.reason = "; ".join(reasons)
        if not np.isfinite(best.lml):
            return np.asarray(initial_theta, dtype=float), np.inf
        if self.converged:
            return _polish(self.f, best.theta, -best.lml, bounds)
        return best.theta.copy(), -best.lml


def _polish(
    f: Callable[[np.ndarray], Any], theta: np.ndarray, value: float, bounds: np.ndarray
) -> tuple[np.ndarray, float]:
    """Newton steps on the analytic gradient from L-BFGS-B's optimum ``theta`` of ``f``.

    L-BFGS-B stops on a relative decrease of ~2e-9 in the LML: on the flat (amplitude,
    length-scale) ridge that leaves the end point uncertain by up to ~1e-2 relative, set by
    rounding (reordering the bins moves it). Solving ``grad = 0`` on the free coordinates
    (those not held at a bound by the gradient) with a finite-difference Hessian of the analytic
    gradient pins it down to ~1e-7, so the result is a property of the LML, not of the path.
    A step is kept if it reduces the gradient and costs no more than ``_POLISH_SLACK`` of LML.
    """
    lo, hi = bounds[:, 0], bounds[:, 1]
    theta = np.array(theta, dtype=float)
    v, g = f(theta)
    if not np.isfinite(v):
        return theta, value
    H = None
    for _ in range(_POLISH_STEPS):
        held = ((theta <= lo + 1e-10) & (g > 0)) | ((theta >= hi - 1e-10) & (g < 0))
        free = np.flatnonzero(~held)
        if len(free) == 0:
            break
        if H is None:
            H = np.empty((len(free), len(free)))
            for j, k in enumerate(free):
                e = np.zeros(2)
                e[k] = _POLISH_H
                H[:, j] = (f(theta + e)[1][free] - f(theta - e)[1][free]) / (2 * _POLISH_H)
            H = 0.5 * (H + H.T)
            if not np.all(np.isfinite(H)) or np.linalg.eigvalsh(H)[0] <= 0:
                break
            free_h = free
        if not np.array_equal(free, free_h):
            break
        step = np.zeros(2)
        step[free] = -np.linalg.solve(H, g[free])
        step = np.clip(step, -_POLISH_MAX_STEP, _POLISH_MAX_STEP)
        t_new = np.clip(theta + step, lo, hi)
        v_new, g_new = f(t_new)
        # the LML barely changes here (its rounding can exceed the gain): judge the step by
        # the gradient it is meant to zero, and refuse a clear LML loss
        if not (
            v_new <= v + _POLISH_SLACK * max(abs(v), 1.0)
            and np.linalg.norm(g_new[free]) < np.linalg.norm(g[free])
        ):
            break
        moved = float(np.max(np.abs(t_new - theta)))
        theta, v, g = t_new, v_new, g_new
        if moved < _POLISH_XTOL:
            break
    return theta, float(v)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _default_amp_bounds(Z: np.ndarray) -> tuple[float, float]:
    a0 = max(float(np.mean(Z**2)), 1e-6)
    return a0 * _AMP_BOUND_FACTORS[0], a0 * _AMP_BOUND_FACTORS[1]


def _fit_model(
    x: ArrayLike, y: ArrayLike, options: GPOptions, *, seed: int, start: GPHyper | None
) -> tuple[GPHyper, _LogMarginal]:
    restart_policy, method = options.restart_policy, options.method
    ls_bounds, amp_bounds = options.ls_bounds, options.amp_bounds
    if restart_policy not in ("auto", "always"):
        raise ValueError(f"restart_policy must be 'auto' or 'always', got {restart_policy!r}")
    X, Z, alpha = log_targets(x, y)
    if len(X) < MIN_TRAIN_BINS:
        raise ValueError(f"too few training bins for the GP fit ({len(X)})")
    lo, hi = float(ls_bounds[0]), float(ls_bounds[1])
    if not 0 < lo < hi:
        raise ValueError(f"invalid length-scale bounds ({lo}, {hi})")
    amp_b = _default_amp_bounds(Z) if amp_bounds is None else tuple(map(float, amp_bounds))
    a0 = min(max(float(np.mean(Z**2)), amp_b[0]), amp_b[1])
    l0 = lo**0.25 * hi**0.75  # upper part of the range: smooth backgrounds prefer long scales
    data_start = np.log([a0, l0])
    warm = None if start is None else np.log([start.amplitude, start.length_scale])

    f = _LogMarginal(X, Z, alpha, method)
    opt = _MultiStart(
        f,
        warm=warm,
        data_start=data_start,
        n_restarts=options.n_restarts,
        seed=seed,
        policy=restart_policy,
        maxiter=options.maxiter,
    )
    bounds = np.log([amp_b, (lo, hi)])
    theta, neg_lml = opt(None, data_start if warm is None else warm, bounds)
    a_fit, l_fit = np.exp(theta)
    hyper = GPHyper(
        amplitude=float(a_fit),
        length_scale=float(l_fit),
        lml=-float(neg_lml),
        converged=opt.converged,
        n_evals=f.n_evals,
        reason=opt.reason,
    )
    return hyper, f


def fit_gp(
    x: ArrayLike, y: ArrayLike, options: GPOptions, *, seed: int, start: GPHyper | None = None
) -> GPHyper:
    """Fit ``ConstantKernel * RBF`` to counts ``y`` at bin centres ``x`` (GeV) in log-log space.

    Starts: ``start`` (previous mass) if given, the data-driven point, and
    ``options.n_restarts`` random points drawn with ``numpy.random.default_rng(seed)``. Same
    inputs and seed give bitwise identical output (with a fixed BLAS thread count).
    """
    hyper, _ = _fit_model(x, y, options, seed=seed, start=start)
    return hyper


def _rbf(X1: np.ndarray, X2: np.ndarray | None, ell: float) -> np.ndarray:
    """RBF correlation matrix, computed as sklearn's ``RBF`` does."""
    if X2 is None:
        R = np.exp(-0.5 * squareform(pdist(X1[:, None] / ell, metric="sqeuclidean")))
        np.fill_diagonal(R, 1.0)
        out: np.ndarray = R
        return out
    Rx: np.ndarray = np.exp(
        -0.5 * cdist(X1[:, None] / ell, X2[:, None] / ell, metric="sqeuclidean")
    )
    return Rx


def _posterior_dense(
    X: np.ndarray,
    Z: np.ndarray,
    alpha: np.ndarray,
    Xp: np.ndarray,
    a: float,
    ell: float,
    diag: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """As sklearn's ``fit`` + ``predict(return_cov=True)``: ``K*^T K^-1 Z``, ``K** - v^T v``
    (``diag``: only the diagonal of the latter, ``a - sum(v**2)``)."""
    K = a * _rbf(X, None, ell)
    K[np.diag_indices_from(K)] += alpha
    L = cholesky(K, lower=True, check_finite=False)
    coef = cho_solve((L, True), Z, check_finite=False)
    Ks = a * _rbf(Xp, X, ell)
    v = solve_triangular(L, Ks.T, lower=True, check_finite=False)
    if diag:
        return Ks @ coef, a - np.einsum("ij,ij->j", v, v)
    return Ks @ coef, a * _rbf(Xp, None, ell) - v.T @ v


def _joint_factor(
    X: np.ndarray, alpha: np.ndarray, Xp: np.ndarray, a: float, ell: float, rmax: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(Ft, Vt, L)`` of the training and prediction points factored together (``R ~= F F^T``,
    the prediction points pivoted until their residual is at rounding level),
    ``V = sqrt(a) D^-1/2 F_train`` and ``L L^T = I + V^T V``; None if the rank is high."""
    if a * float(np.max(1.0 / alpha)) > _LOWRANK_MAX_WEIGHT:
        return None
    Ft = _pivoted_cholesky(
        np.concatenate([X, Xp]), ell, a / alpha, _LOWRANK_TOL, rmax + len(Xp), n_pred=len(Xp)
    )
    if Ft is None:
        return None
    r = Ft.shape[0]
    Vt = Ft[:, : len(X)] * np.sqrt(a / alpha)
    IG = Vt @ Vt.T
    IG.flat[:: r + 1] += 1.0
    L, info = lapack.dpotrf(IG, lower=1, clean=1)
    if info != 0:
        return None
    return Ft, Vt, L


def _posterior_lowrank(
    X: np.ndarray,
    Z: np.ndarray,
    alpha: np.ndarray,
    Xp: np.ndarray,
    a: float,
    ell: float,
    rmax: int,
    diag: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Posterior through the weight-space form of the joint factor; None if the rank is high
    (``diag``: only the diagonal of ``S``).

    With the latent ``f = sqrt(a) F w``, ``w ~ N(0, I)`` (:func:`_joint_factor`):
    ``Cov(w | Z) = (I + G)^-1``, ``G = V^T V``, hence ``S = a F_p (I+G)^-1 F_p^T`` (a sum of
    squares, not the cancelling difference ``K** - v^T v``) and
    ``mu = a F_p (I+G)^-1 F_train^T D^-1 Z``.
    """
    joint = _joint_factor(X, alpha, Xp, a, ell, rmax)
    if joint is None:
        return None
    Ft, Vt, L = joint
    c, _ = lapack.dtrtrs(L, Vt @ (Z / np.sqrt(alpha)), lower=1)
    Y, _ = lapack.dtrtrs(L, np.ascontiguousarray(Ft[:, len(X) :]), lower=1)  # L^-1 F_p^T
    return math.sqrt(a) * (Y.T @ c), a * (np.einsum("ij,ij->j", Y, Y) if diag else Y.T @ Y)


def _posterior(
    X: np.ndarray,
    Z: np.ndarray,
    alpha: np.ndarray,
    x_pred: ArrayLike,
    theta: np.ndarray,
    method: str = "auto",
    diag: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Latent posterior mean and covariance at ``x_pred`` (GeV), eigenvalue-floored; with
    ``diag`` only the covariance's diagonal, unfloored (no matrix of every point pair, and
    none of the eigendecomposition that is most of the cost for many points)."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    xp = np.asarray(x_pred, dtype=float).ravel()
    if np.any(xp <= 0):
        raise ValueError("prediction points must be positive")
    if len(xp) == 0:
        return np.zeros(0), np.zeros(0) if diag else np.zeros((0, 0))
    Xp = np.log(xp)
    a, ell = math.exp(theta[0]), math.exp(theta[1])
    out = None
    if method != "dense":
        rmax = len(X) if method == "lowrank" else int(_LOWRANK_MAX_FRAC * len(X))
        out = _posterior_lowrank(X, Z, alpha, Xp, a, ell, rmax, diag)
    if out is None:
        out = _posterior_dense(X, Z, alpha, Xp, a, ell, diag)
    mu, S = out
    return np.asarray(mu, dtype=float), S if diag else _psd_floor(S)


def _psd_floor(S: np.ndarray, rel: float = _EIG_FLOOR) -> np.ndarray:
    """Symmetrise ``S`` and floor its eigenvalues at ``rel * max eigenvalue``.

    ``K** - V^T V`` loses the smallest eigenvalues of a smooth posterior to rounding (they come
    out slightly negative), and the low-rank ``S`` has rank at most that of the factor; the
    floor keeps ``S`` and hence ``C`` positive definite while changing entries by ~``rel``
    relative. ``S`` is returned unchanged when already above it.
    """
    S = 0.5 * (S + S.T)
    if S.shape[0] == 0:
        return S
    lam, U = np.linalg.eigh(S)
    floor = rel * max(float(lam[-1]), np.finfo(float).tiny)
    if lam[0] >= floor:
        return S
    S = (U * np.maximum(lam, floor)) @ U.T
    out: np.ndarray = 0.5 * (S + S.T)
    return out


def predict_latent(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_pred: ArrayLike,
    hyper: GPHyper,
    *,
    method: str = "auto",
    diag: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean ``mu`` and covariance ``S`` of the latent ln-count at ``x_pred``
    (``diag``: only its diagonal, as :func:`_posterior`)."""
    X, Z, alpha = log_targets(x_train, y_train)
    return _posterior(X, Z, alpha, x_pred, hyper.theta, method, diag)


def latent_mean_map(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_pred: ArrayLike,
    hyper: GPHyper,
    *,
    method: str = "auto",
) -> np.ndarray:
    """The linear map ``M`` with ``mu_pred = M @ Z_train`` for fixed hyperparameters.

    ``M = K(X_pred, X_train) (K(X_train, X_train) + diag(alpha))^-1`` in log-log space, with
    the per-bin noise ``alpha`` of ``y_train``; ``Z_train = ln y_train`` (0 for empty bins).
    It is what the signal-leakage template, the GoF check and the fixed-hyperparameter toy
    scans apply. ``method`` as for the LML: ``"auto"`` computes it through the joint
    low-rank factor (:func:`_mean_map_lowrank`, the mean of :func:`_posterior_lowrank`
    written as a map) with the dense Cholesky as fallback.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    X, _, alpha = log_targets(x_train, y_train)
    xp = np.asarray(x_pred, dtype=float).ravel()
    if np.any(xp <= 0):
        raise ValueError("prediction points must be positive")
    Xp = np.log(xp)
    a, ls = hyper.amplitude, hyper.length_scale
    if method != "dense" and len(Xp):
        rmax = len(X) if method == "lowrank" else int(_LOWRANK_MAX_FRAC * len(X))
        M = _mean_map_lowrank(X, alpha, Xp, a, ls, rmax)
        if M is not None:
            return M
    K = a * np.exp(-0.5 * ((X[:, None] - X[None, :]) / ls) ** 2)
    K[np.diag_indices_from(K)] += alpha
    Ks = a * np.exp(-0.5 * ((Xp[:, None] - X[None, :]) / ls) ** 2)
    cf = np.linalg.cholesky(K)
    # M = Ks K^-1  <=>  M^T = K^-1 Ks^T (K symmetric)
    return np.asarray(cho_solve((cf, True), Ks.T).T, dtype=float)


def _mean_map_lowrank(
    X: np.ndarray, alpha: np.ndarray, Xp: np.ndarray, a: float, ell: float, rmax: int
) -> np.ndarray | None:
    """``M = sqrt(a) F_p L^-T L^-1 V^T D^-1/2`` (None if the rank is high): the posterior
    mean of :func:`_posterior_lowrank`, ``mu = M Z``, as a map. Costs ``O(n r^2)`` instead
    of the dense ``O(n^3)`` Cholesky of the training kernel."""
    joint = _joint_factor(X, alpha, Xp, a, ell, rmax)
    if joint is None:
        return None
    Ft, Vt, L = joint
    C, _ = lapack.dtrtrs(L, Vt / np.sqrt(alpha), lower=1)  # L^-1 V^T D^-1/2
    Y, _ = lapack.dtrtrs(L, np.ascontiguousarray(Ft[:, len(X) :]), lower=1)  # L^-1 F_p^T
    out: np.ndarray = math.sqrt(a) * (Y.T @ C)
    return out


def lognormal_moments(mu: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts mean ``b = exp(mu + diag(S)/2)`` and covariance ``b_i b_j (exp(S_ij) - 1)``;
    an overflow gives ``inf``, which callers check (a fit whose prediction overflows fails)."""
    with np.errstate(over="ignore", invalid="ignore"):
        b = np.exp(mu + 0.5 * np.diagonal(S))
        C = np.outer(b, b) * np.expm1(S)
    return b, 0.5 * (C + C.T)


def predict_counts_diag(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_pred: ArrayLike,
    hyper: GPHyper,
    *,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Background counts ``b`` at ``x_pred`` and their variances: the ``b`` and ``diag(C)``
    of :func:`predict_counts` to its eigenvalue floor (relative 1e-12 of the largest),
    without the covariance of every bin pair and its eigendecomposition (a display's curve
    and band over many bins: memory linear in the points)."""
    xp = np.asarray(x_pred, dtype=float).ravel()
    parts = [  # in blocks: the joint factor of training and prediction points grows with both
        predict_latent(x_train, y_train, xp[i : i + _DIAG_BLOCK], hyper, method=method, diag=True)
        for i in range(0, max(len(xp), 1), _DIAG_BLOCK)
    ]
    mu = np.concatenate([m for m, _ in parts])
    s = np.clip(np.concatenate([d for _, d in parts]), 0.0, None)
    with np.errstate(over="ignore", invalid="ignore"):
        b = np.exp(mu + 0.5 * s)
        return b, b * b * np.expm1(s)


def predict_counts(
    x_train: ArrayLike,
    y_train: ArrayLike,
    x_pred: ArrayLike,
    hyper: GPHyper,
    *,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Background counts ``b`` and covariance ``C`` at ``x_pred`` (lognormal moments)."""
    mu, S = predict_latent(x_train, y_train, x_pred, hyper, method=method)
    return lognormal_moments(mu, S)


def fit_window(
    edges: ArrayLike,
    counts: ArrayLike,
    masks: WindowMasks,
    options: GPOptions,
    *,
    seed: int,
    start: GPHyper | None = None,
) -> WindowFit:
    """Fit the GP on the training bins of ``masks`` and predict ``(b, C)`` on its blind bins.

    ``options.method`` applies to the LML and to the prediction; ``seed`` and ``start`` as in
    :func:`fit_gp`.
    """
    e = np.asarray(edges, dtype=float)
    y = np.asarray(counts, dtype=float)
    if e.ndim != 1 or len(e) != len(y) + 1:
        raise ValueError("edges must have one more entry than counts")
    centres = 0.5 * (e[1:] + e[:-1])
    blind = masks.blind(centres)
    if not blind.any():
        raise ValueError(f"no bin centre within the blind window at mass {masks.mass}")
    train = masks.train(centres)
    hyper, f = _fit_model(centres[train], y[train], options, seed=seed, start=start)
    mu, S = _posterior(f.X, f.Z, f.alpha, centres[blind], hyper.theta, options.method)
    b, C = lognormal_moments(mu, S)
    return WindowFit(hyper=hyper, blind=blind, train=train, b=b, C=C, mu=mu, S=S)
