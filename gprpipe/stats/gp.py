"""Log-log Gaussian-process background fit at one test mass.

The model is sklearn's ``GaussianProcessRegressor`` with kernel ``ConstantKernel * RBF`` and
per-bin noise ``alpha_i = 1/y_i`` (1 for empty bins), trained on ``X = ln x``, ``Z = ln y``
(0 for empty bins). Hyperparameters maximise the log marginal likelihood (LML) with L-BFGS-B,
run through a custom sklearn ``optimizer`` callable that controls the starts:

* a warm start (the previous mass's solution, clipped into this mass's bounds) and/or a
  data-driven start (amplitude ``mean(Z**2)``, length scale in the upper part of its bounds);
* ``n_restarts`` seeded random starts, log-uniform within the bounds.

``restart_policy="always"`` runs every start and keeps the best. ``"auto"`` (default) does the
same for a cold fit (no ``start``); with a warm start it runs the other starts only when the
warm fit looks suspicious: the optimiser failed, the fit sat at its start point, it ended on
an amplitude bound, or one of the cheap value-only LML probes at the data-driven and random
start points is already clearly better than the fitted optimum.

The LML and its analytic gradient are computed by ``_LogMarginal`` (one Cholesky and one
``potri`` per evaluation), numerically the same function as
``GaussianProcessRegressor.log_marginal_likelihood``; sklearn does the final fit and the
prediction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_solve, lapack
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel

from gprpipe.stats.window import blind_mask

__all__ = [
    "GPHyper",
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
_LBFGS_OPTIONS: dict = {"maxls": 10}
_EIG_FLOOR = 1e-12  # latent posterior covariance: eigenvalue floor relative to the largest


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
    return np.log1p(np.asarray(sigma, dtype=float) / np.asarray(mass, dtype=float))


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
class _LogMarginal:
    """Negative LML of ``a * RBF(l) + diag(alpha)`` and its gradient in ``(ln a, ln l)``.

    Same function as sklearn's ``log_marginal_likelihood`` (``normalize_y=False``), with the
    gradient traces reduced to one ``potri`` and a few elementwise products.
    """

    def __init__(self, X: np.ndarray, Z: np.ndarray, alpha: np.ndarray):
        self.Z = np.ascontiguousarray(Z, dtype=float)
        self.alpha = np.ascontiguousarray(alpha, dtype=float)
        self.n = len(self.Z)
        d = X[:, None] - X[None, :]
        self.d2 = d * d
        self.n_evals = 0

    def __call__(self, theta: np.ndarray, eval_gradient: bool = True):
        """Return ``-lml`` (and ``-grad`` if ``eval_gradient``); ``inf`` if K is not PD."""
        self.n_evals += 1
        a = math.exp(theta[0])
        ell = math.exp(theta[1])
        n = self.n
        R = np.multiply(self.d2, -0.5 / (ell * ell))
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
        np.multiply(R, self.d2, out=R)  # P = R o d2, symmetric with zero diagonal
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
    """Custom sklearn optimizer: seeded multi-start L-BFGS-B on the fast LML."""

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

    def _local(self, x0: np.ndarray, bounds: np.ndarray, label: str) -> _Run:
        s = _STEP_SCALE

        def fs(u: np.ndarray):
            v, g = self.f(u * s)
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

    def __call__(self, obj_func, initial_theta, bounds):
        """sklearn optimizer protocol; ``obj_func`` is replaced by the equal, faster ``self.f``."""
        bounds = np.asarray(bounds, dtype=float)
        rng = np.random.default_rng(self.seed)
        randoms = [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(self.n_restarts)]
        clip = lambda t: np.clip(np.asarray(t, dtype=float), bounds[:, 0], bounds[:, 1])  # noqa: E731

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
                    if -self.f(x0, eval_gradient=False) > first.lml + _CLEARLY_BETTER:
                        trigger = f"probe {label} better"
                        break
        if trigger:
            for x0, label in others:
                self._local(x0, bounds, label)

        # Best LML wins (ties: earliest start). Because every run that was made is a candidate,
        # no other start can end clearly better than the chosen one; with a warm start in
        # "auto" mode the probes above are what checks the starts that were not run.
        order = sorted(range(len(self.runs)), key=lambda i: (-self.runs[i].lml, i))
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
        return best.theta.copy(), -best.lml


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def _gpr(theta: np.ndarray, alpha: np.ndarray, amp_bounds, ls_bounds, optimizer):
    kernel = ConstantKernel(math.exp(theta[0]), tuple(amp_bounds)) * RBF(
        math.exp(theta[1]), tuple(ls_bounds)
    )
    return GaussianProcessRegressor(
        kernel=kernel, alpha=alpha, optimizer=optimizer, normalize_y=False, copy_X_train=False
    )


def _default_amp_bounds(Z: np.ndarray) -> tuple[float, float]:
    a0 = max(float(np.mean(Z**2)), 1e-6)
    return a0 * _AMP_BOUND_FACTORS[0], a0 * _AMP_BOUND_FACTORS[1]


def _fit_model(
    x: ArrayLike,
    y: ArrayLike,
    *,
    ls_bounds: tuple[float, float],
    n_restarts: int,
    seed: int,
    start: GPHyper | None,
    amp_bounds: tuple[float, float] | None,
    restart_policy: str,
    maxiter: int,
) -> tuple[GPHyper, GaussianProcessRegressor]:
    if restart_policy not in ("auto", "always"):
        raise ValueError(f"restart_policy must be 'auto' or 'always', got {restart_policy!r}")
    X, Z, alpha = log_targets(x, y)
    if len(X) < 3:
        raise ValueError(f"too few training bins for the GP fit ({len(X)})")
    lo, hi = float(ls_bounds[0]), float(ls_bounds[1])
    if not 0 < lo < hi:
        raise ValueError(f"invalid length-scale bounds ({lo}, {hi})")
    amp_b = _default_amp_bounds(Z) if amp_bounds is None else tuple(map(float, amp_bounds))
    a0 = min(max(float(np.mean(Z**2)), amp_b[0]), amp_b[1])
    l0 = lo**0.25 * hi**0.75  # upper part of the range: smooth backgrounds prefer long scales
    data_start = np.log([a0, l0])
    warm = None if start is None else np.log([start.amplitude, start.length_scale])

    f = _LogMarginal(X, Z, alpha)
    opt = _MultiStart(
        f,
        warm=warm,
        data_start=data_start,
        n_restarts=n_restarts,
        seed=seed,
        policy=restart_policy,
        maxiter=maxiter,
    )
    gpr = _gpr(data_start if warm is None else warm, alpha, amp_b, (lo, hi), opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gpr.fit(X[:, None], Z)
    a_fit, l_fit = np.exp(gpr.kernel_.theta)
    hyper = GPHyper(
        amplitude=float(a_fit),
        length_scale=float(l_fit),
        lml=float(gpr.log_marginal_likelihood_value_),
        converged=opt.converged,
        n_evals=f.n_evals,
        reason=opt.reason,
    )
    return hyper, gpr


def fit_gp(
    x: ArrayLike,
    y: ArrayLike,
    *,
    ls_bounds: tuple[float, float],
    n_restarts: int,
    seed: int,
    start: GPHyper | None = None,
    amp_bounds: tuple[float, float] | None = None,
    restart_policy: str = "auto",
    maxiter: int = 200,
) -> GPHyper:
    """Fit ``ConstantKernel * RBF`` to counts ``y`` at bin centres ``x`` (GeV) in log-log space.

    ``ls_bounds`` are the RBF length-scale bounds (ln-mass units); ``amp_bounds`` default to
    ``mean(Z**2) * (1e-3, 1e3)``. Starts: ``start`` (previous mass) if given, the data-driven
    point, and ``n_restarts`` random points drawn with ``numpy.random.default_rng(seed)``.
    Same inputs and seed give bitwise identical output (with a fixed BLAS thread count).
    """
    hyper, _ = _fit_model(
        x,
        y,
        ls_bounds=ls_bounds,
        n_restarts=n_restarts,
        seed=seed,
        start=start,
        amp_bounds=amp_bounds,
        restart_policy=restart_policy,
        maxiter=maxiter,
    )
    return hyper


def _fixed_optimizer(hyper: GPHyper):
    theta = hyper.theta

    def optimizer(obj_func, initial_theta, bounds):
        return theta.copy(), -float(hyper.lml)

    return optimizer


def _predict(gpr: GaussianProcessRegressor, x_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xp = np.asarray(x_pred, dtype=float).ravel()
    if np.any(xp <= 0):
        raise ValueError("prediction points must be positive")
    if len(xp) == 0:
        return np.zeros(0), np.zeros((0, 0))
    mu, S = gpr.predict(np.log(xp)[:, None], return_cov=True)
    return np.asarray(mu, dtype=float), _psd_floor(S)


def _psd_floor(S: np.ndarray, rel: float = _EIG_FLOOR) -> np.ndarray:
    """Symmetrise ``S`` and floor its eigenvalues at ``rel * max eigenvalue``.

    ``K** - V^T V`` loses the smallest eigenvalues of a smooth posterior to rounding (they come
    out slightly negative); the floor keeps ``S`` and hence ``C`` positive definite while
    changing entries by ~``rel`` relative. ``S`` is returned unchanged when already above it.
    """
    S = 0.5 * (S + S.T)
    if S.shape[0] == 0:
        return S
    lam, U = np.linalg.eigh(S)
    floor = rel * max(float(lam[-1]), np.finfo(float).tiny)
    if lam[0] >= floor:
        return S
    S = (U * np.maximum(lam, floor)) @ U.T
    return 0.5 * (S + S.T)


def predict_latent(
    x_train: ArrayLike, y_train: ArrayLike, x_pred: ArrayLike, hyper: GPHyper
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean ``mu`` and covariance ``S`` of the latent ln-count at ``x_pred``."""
    X, Z, alpha = log_targets(x_train, y_train)
    theta = hyper.theta
    gpr = _gpr(theta, alpha, (1e-300, 1e300), (1e-300, 1e300), _fixed_optimizer(hyper))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gpr.fit(X[:, None], Z)
    return _predict(gpr, x_pred)


def latent_mean_map(
    x_train: ArrayLike, y_train: ArrayLike, x_pred: ArrayLike, hyper: GPHyper
) -> np.ndarray:
    """The linear map ``M`` with ``mu_pred = M @ Z_train`` for fixed hyperparameters.

    ``M = K(X_pred, X_train) (K(X_train, X_train) + diag(alpha))^-1`` in log-log space, with
    the per-bin noise ``alpha`` of ``y_train``; ``Z_train = ln y_train`` (0 for empty bins).
    It is what the signal-leakage template and the fixed-hyperparameter toy scans apply.
    """
    X, _, alpha = log_targets(x_train, y_train)
    xp = np.asarray(x_pred, dtype=float).ravel()
    if np.any(xp <= 0):
        raise ValueError("prediction points must be positive")
    Xp = np.log(xp)
    a, ls = hyper.amplitude, hyper.length_scale
    K = a * np.exp(-0.5 * ((X[:, None] - X[None, :]) / ls) ** 2)
    K[np.diag_indices_from(K)] += alpha
    Ks = a * np.exp(-0.5 * ((Xp[:, None] - X[None, :]) / ls) ** 2)
    cf = np.linalg.cholesky(K)
    # M = Ks K^-1  <=>  M^T = K^-1 Ks^T (K symmetric)
    return np.asarray(cho_solve((cf, True), Ks.T).T, dtype=float)


def lognormal_moments(mu: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts mean ``b = exp(mu + diag(S)/2)`` and covariance ``b_i b_j (exp(S_ij) - 1)``."""
    b = np.exp(mu + 0.5 * np.diagonal(S))
    C = np.outer(b, b) * np.expm1(S)
    return b, 0.5 * (C + C.T)


def predict_counts(
    x_train: ArrayLike, y_train: ArrayLike, x_pred: ArrayLike, hyper: GPHyper
) -> tuple[np.ndarray, np.ndarray]:
    """Background counts ``b`` and covariance ``C`` at ``x_pred`` (lognormal moments)."""
    mu, S = predict_latent(x_train, y_train, x_pred, hyper)
    return lognormal_moments(mu, S)


def fit_window(
    edges: ArrayLike,
    counts: ArrayLike,
    mass: float,
    sigma: float,
    *,
    blind_nsigma: float = 1.64,
    train_exclude_nsigma: float | None = None,
    train_range: tuple[float, float] | None = None,
    ls_bounds: tuple[float, float],
    n_restarts: int,
    seed: int,
    start: GPHyper | None = None,
    amp_bounds: tuple[float, float] | None = None,
    restart_policy: str = "auto",
    maxiter: int = 200,
) -> WindowFit:
    """Fit the GP on the sidebands of ``mass`` and predict ``(b, C)`` on the blind bins.

    Blind bins: centre within ``blind_nsigma * sigma`` of ``mass``. Training bins: centre in
    ``train_range`` (default: all bins with a positive centre) and outside
    ``train_exclude_nsigma * sigma`` (default ``blind_nsigma``).
    """
    e = np.asarray(edges, dtype=float)
    y = np.asarray(counts, dtype=float)
    if e.ndim != 1 or len(e) != len(y) + 1:
        raise ValueError("edges must have one more entry than counts")
    centres = 0.5 * (e[1:] + e[:-1])
    blind = blind_mask(centres, mass, sigma, blind_nsigma)
    if not blind.any():
        raise ValueError(f"no bin centre within the blind window at mass {mass}")
    excl = blind_nsigma if train_exclude_nsigma is None else train_exclude_nsigma
    train = ~blind_mask(centres, mass, sigma, excl) & (centres > 0)
    if train_range is not None:
        train &= (centres >= train_range[0]) & (centres <= train_range[1])
    hyper, gpr = _fit_model(
        centres[train],
        y[train],
        ls_bounds=ls_bounds,
        n_restarts=n_restarts,
        seed=seed,
        start=start,
        amp_bounds=amp_bounds,
        restart_policy=restart_policy,
        maxiter=maxiter,
    )
    mu, S = _predict(gpr, centres[blind])
    b, C = lognormal_moments(mu, S)
    return WindowFit(hyper=hyper, blind=blind, train=train, b=b, C=C, mu=mu, S=S)
