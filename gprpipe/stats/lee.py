"""Look-elsewhere effect from background-only whole-spectrum toys.

For fixed hyperparameters the GP posterior mean of the latent ln-count in a blind window is
linear in the training log-counts, ``mu = M Z_train`` (:func:`~.gp.latent_mean_map`), and
its covariance ``S`` does not depend on the counts. A toy spectrum is therefore scanned over
every test mass without refitting: per mass, ``mu_t = M Z_t,train``, the window background
and covariance are the lognormal moments of ``(mu_t, S)``, and ``q0`` comes from the same
profiled window likelihood as the data (:mod:`.likelihood`), with the nuisance factor
``diag(b_t) chol(exp S - 1)`` scaled per toy. The maximum ``Z_local`` over the scan per toy
gives the global p-value of an observed maximum; correlations between neighbouring masses
are exact for fixed hyperparameters.

Everything is vectorised over toys (one batched Newton solve per mass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import block_diag
from scipy.special import ndtr

from .combine import eps2_scale
from .gp import GPHyper, latent_mean_map, lognormal_moments, predict_latent
from .leakage import leakage_shift
from .likelihood import LAM_FLOOR, WindowModel, minimise

__all__ = [
    "FixedMap",
    "JointMap",
    "fixed_map",
    "joint_map",
    "log_counts",
    "max_z",
    "p_global_toys",
    "poisson_toys",
    "scan_fixed",
    "sidak_max_z_sf",
    "z_local_fixed",
    "z_local_joint",
]


@dataclass(frozen=True)
class FixedMap:
    """One test mass's GP as a fixed linear map of the toy's training log-counts.

    ``train`` / ``blind``: bin indices; ``M`` ``(k, n_train)``; ``S`` ``(k, k)`` the latent
    covariance; ``w`` the signal template on the blind bins; ``win`` the window model of
    the data background ``b_ref`` (its compressed nuisance basis is reused for every toy).
    ``leak`` (or None): ``M (w_train / y_train)``, so that a toy's leakage-aware template is
    ``w - b_t * leak`` (the signal that leaks into the sidebands raises the background).
    """

    train: NDArray[np.intp]
    blind: NDArray[np.intp]
    M: NDArray[np.float64]
    S: NDArray[np.float64]
    w: NDArray[np.float64]
    win: WindowModel
    leak: NDArray[np.float64] | None = None

    def template(self, b: NDArray[np.float64]) -> NDArray[np.float64]:
        """The window template of toys with backgrounds ``b`` ``(T, k)``."""
        if self.leak is None:
            return np.broadcast_to(self.w, b.shape)
        return self.w - b * self.leak

    @property
    def b_ref(self) -> NDArray[np.float64]:
        return self.win.b

    def background(self, logc: NDArray[np.float64]) -> NDArray[np.float64]:
        """Window background ``exp(M Z_train + diag(S)/2)`` of toys ``logc`` ``(T, bins)``."""
        out: NDArray[np.float64] = np.exp(
            logc[:, self.train] @ self.M.T + 0.5 * np.diagonal(self.S)
        )
        return out


def log_counts(counts: ArrayLike) -> NDArray[np.float64]:
    """The GP targets ``ln y`` (0 for empty bins), elementwise."""
    y = np.asarray(counts, dtype=float)
    return np.log(np.where(y > 0, y, 1.0))


def fixed_map(
    centres: ArrayLike,
    counts: ArrayLike,
    train: ArrayLike,
    blind: ArrayLike,
    hyper: GPHyper,
    w: ArrayLike,
    w_train: ArrayLike | None = None,
) -> FixedMap:
    """The fixed map of one mass from the data it was fitted on.

    ``train`` and ``blind`` are boolean masks over the bins; ``hyper`` the data fit's
    hyperparameters (the per-bin noise ``1/y`` of the data stays fixed); ``w`` the template on
    the blind bins. With ``w_train`` (the template on the training bins) the signal leakage
    is modelled: the template becomes ``w - b * (M (w_train / y_train))`` (empty training
    bins contribute nothing), evaluated with each toy's ``b``. Applied to the data itself,
    the map reproduces the data fit's ``(b, C)`` and leakage-aware template.
    """
    x = np.asarray(centres, dtype=float)
    y = np.asarray(counts, dtype=float)
    tr = np.flatnonzero(np.asarray(train, dtype=bool))
    bl = np.flatnonzero(np.asarray(blind, dtype=bool))
    M = latent_mean_map(x[tr], y[tr], x[bl], hyper)
    _, S = predict_latent(x[tr], y[tr], x[bl], hyper)
    mu = M @ log_counts(y[tr])
    b, C = lognormal_moments(mu, S)
    w = np.asarray(w, dtype=float)
    # per unit background: leakage_shift(..., b=1) = M (w_train / y_train)
    leak = (
        None
        if w_train is None
        else leakage_shift(x[tr], y[tr], w_train, x[bl], np.ones(bl.size), hyper)
    )
    win = WindowModel.from_covariance(b, C, w if leak is None else w - b * leak)
    return FixedMap(train=tr, blind=bl, M=M, S=S, w=w, win=win, leak=leak)


def z_local_fixed(
    fm: FixedMap, counts: NDArray[np.float64], logc: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``Z_local`` of toys at one mass, ``(Z, converged)`` of shape ``(T,)``.

    ``counts`` and ``logc`` ``(T, bins)``: whole-spectrum toy counts and their log-counts.
    The likelihood is ``lam = b_t + r_t * (Lc theta) + A w`` with ``r_t = b_t / b_ref``, i.e.
    the window covariance ``b_t b_t^T (exp S - 1)`` of each toy, fitted jointly and profiled
    at ``A = 0`` (only where ``A_hat > 0``: elsewhere ``q0 = 0``).
    """
    n = np.ascontiguousarray(counts[:, fm.blind], dtype=float)
    b = fm.background(logc)
    return _z_local_window(fm.win, n, b, fm.template(b))


def _z_local_window(
    win: WindowModel, n: NDArray[np.float64], b: NDArray[np.float64], wt: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``(Z, converged)`` of toys with window counts ``n``, backgrounds ``b`` and templates
    ``wt`` (each ``(T, k)``), the nuisance factor of ``win`` scaled by ``b / win.b``."""
    T, k = n.shape
    r = b / win.b
    G = np.empty((T, k, win.r + 1))
    G[:, :, 0] = wt
    G[:, :, 1:] = r[:, :, None] * win.Lc
    # Start: the GLS estimate with the data's covariance (only a starting point).
    u = win.gls_vector()
    resid = n - b
    A0 = resid @ u / (wt @ u)
    # inside the physical region (lam >= b/2 where the template is positive)
    A_lo = np.max(np.where(wt > 0, -0.5 * b / np.where(wt > 0, wt, 1.0), -np.inf), axis=1)
    A0 = np.maximum(A0, A_lo)
    p0 = np.empty((T, win.r + 1))
    p0[:, 0] = A0
    p0[:, 1:] = win.gls_theta(resid - A0[:, None] * wt) / r.mean(axis=1, keepdims=True)
    lam0 = b + np.matmul(G, p0[:, :, None])[:, :, 0]
    p0[np.any(lam0 <= LAM_FLOOR, axis=1), 1:] = 0.0
    f, p, conv = minimise(n, b, G, win.prior_full, win.ridge_full, p0)
    A = p[:, 0]
    q = np.zeros(T)
    rows = np.flatnonzero(A > 0)
    if rows.size:
        th0 = p[rows, 1:] + A[rows, None] * win.theta_slope()
        G0 = np.ascontiguousarray(G[rows, :, 1:])
        lam0 = b[rows] + np.matmul(G0, th0[:, :, None])[:, :, 0]
        th0[np.any(lam0 <= LAM_FLOOR, axis=1)] = 0.0
        f0, _, c0 = minimise(n[rows], b[rows], G0, win.prior_theta, win.ridge_theta, th0)
        q[rows] = np.maximum(2.0 * (f0 - f[rows]), 0.0)
        conv[rows] &= c0
    return np.sqrt(q), conv


@dataclass(frozen=True)
class JointMap:
    """Several datasets' fixed maps at one mass, fitted with one shared eps^2 (the
    combination of :mod:`.combine`): block ``d``'s template is scaled by its yield per unit
    eps^2 ``k_units[d]`` (times the combination's ``scale``), its nuisances are its own."""

    maps: tuple[FixedMap, ...]
    k_units: NDArray[np.float64]
    scale: float
    win: WindowModel


def joint_map(maps: Sequence[FixedMap], k_units: ArrayLike) -> JointMap:
    """The joint window of ``maps`` (the datasets covering a mass) with yields per unit
    eps^2 ``k_units``: data backgrounds concatenated, nuisance factors block-diagonal, as
    :func:`.combine.combine` builds it from the data fits."""
    k = np.asarray(k_units, dtype=float)
    if len(maps) != k.size or not maps:
        raise ValueError("one yield per unit eps^2 for each map is needed")
    b = np.concatenate([fm.win.b for fm in maps])
    s_unit = np.concatenate([kd * fm.win.w for kd, fm in zip(k, maps)])
    scale = eps2_scale(b, s_unit)
    win = WindowModel(b, block_diag(*[fm.win.L for fm in maps]), s_unit * scale)
    return JointMap(tuple(maps), k, scale, win)


def z_local_joint(
    jm: JointMap, counts: Sequence[NDArray[np.float64]], logc: Sequence[NDArray[np.float64]]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``Z_local`` of the combination at one mass, ``(Z, converged)`` of shape ``(T,)``.

    ``counts[d]`` and ``logc[d]`` ``(T, bins_d)``: toy ``t`` of every dataset (drawn
    independently per dataset: together one pseudo-experiment of the combination). Each
    block has its toy's background and covariance scaling and, with leakage modelled, its
    own template, as :func:`z_local_fixed` for one dataset."""
    bs = [fm.background(lc) for fm, lc in zip(jm.maps, logc)]
    n = np.ascontiguousarray(
        np.concatenate([c[:, fm.blind] for fm, c in zip(jm.maps, counts)], axis=1), dtype=float
    )
    wt = np.concatenate(
        [kd * jm.scale * fm.template(bd) for kd, fm, bd in zip(jm.k_units, jm.maps, bs)], axis=1
    )
    return _z_local_window(jm.win, n, np.concatenate(bs, axis=1), wt)


def scan_fixed(
    maps: Sequence[FixedMap | None], counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``Z_local`` ``(T, n_masses)`` of whole-spectrum toys ``counts`` ``(T, bins)`` at every
    mass; a ``None`` map (a mass without a usable fit) gives NaN. Also the convergence flags."""
    c = np.asarray(counts, dtype=float)
    logc = log_counts(c)
    T = c.shape[0]
    Z = np.full((T, len(maps)), np.nan)
    conv = np.zeros((T, len(maps)), dtype=bool)
    for j, fm in enumerate(maps):
        if fm is not None:
            Z[:, j], conv[:, j] = z_local_fixed(fm, c, logc)
    return Z, conv


def poisson_toys(
    mean: ArrayLike, seeds: Sequence[np.random.SeedSequence | int]
) -> NDArray[np.int64]:
    """Whole-spectrum Poisson toys around ``mean``, toy ``t`` from ``default_rng(seeds[t])``
    (so a toy does not depend on how toys are split into tasks)."""
    mu = np.asarray(mean, dtype=float)
    out = np.empty((len(seeds), mu.size), dtype=np.int64)
    for t, s in enumerate(seeds):
        out[t] = np.random.default_rng(s).poisson(mu)
    return out


def max_z(Z: ArrayLike, use: ArrayLike | None = None) -> NDArray[np.float64]:
    """Maximum ``Z_local`` over the masses ``use`` (boolean over columns) per toy; NaN
    entries are ignored, and a toy with none finite (every fit of it failed) is NaN: it
    says nothing of the maximum (as 0 it counted as a toy below every observed Z)."""
    Z = np.asarray(Z, dtype=float)
    if use is not None:
        Z = Z[:, np.asarray(use, dtype=bool)]
    if Z.shape[1] == 0:  # no mass counts: no toy has a maximum
        return np.full(Z.shape[0], np.nan)
    finite = np.isfinite(Z)
    top = np.max(np.where(finite, Z, -np.inf), axis=1)
    out: NDArray[np.float64] = np.where(finite.any(axis=1), top, np.nan)
    return out


def p_global_toys(z_obs: ArrayLike, max_z_toys: ArrayLike) -> NDArray[np.float64]:
    """Global p-value of local significances ``z_obs``: ``(1 + #{max Z_toy >= z}) / (1 + N)``
    over the N toys with a maximum (NaN toys, whose fits all failed, do not count).

    NaN where ``z_obs`` is NaN, and where no toy has a maximum. With one mass this is the
    toy estimate of the local p-value.
    """
    mz = np.asarray(max_z_toys, dtype=float).ravel()
    mz = np.sort(mz[np.isfinite(mz)])
    z = np.asarray(z_obs, dtype=float)
    above = mz.size - np.searchsorted(mz, z, side="left")
    usable = np.isfinite(z) & (mz.size > 0)
    p: NDArray[np.float64] = np.where(usable, (1.0 + above) / (1.0 + mz.size), np.nan)
    return p


def p_global_toys_err(p: ArrayLike, n_toys: int) -> NDArray[np.float64]:
    """Binomial standard error of a toy global p-value ``p`` from ``n_toys`` toys,
    ``sqrt(p (1 - p) / N)``; NaN where ``p`` is NaN. Where no toy reached the observed
    Z, ``p = 1 / (N + 1)`` and this error (about ``1 / N``) says the estimate is a bound
    of that size: more toys are needed."""
    q = np.asarray(p, dtype=float)
    out: NDArray[np.float64] = np.sqrt(q * (1.0 - q) / max(int(n_toys), 1))
    return out


def zero_fraction(z_toys: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per mass (a column of toys x masses ``Z_local``, NaN where a toy has no Z): the
    fraction of toys with ``Z_local = 0`` (no excess, ``A_hat <= 0``) and ``0.5 / sqrt(N')``,
    its binomial standard error for unbiased toys (``N'`` the toys with a Z there; the
    error of any fraction is at most that). Background-only toys that each window's fit
    predicts without bias give 0.5; a fraction several errors away says the toys'
    background differs there from what the window's fit predicts, and their p-values at
    that mass carry the difference. NaN where no toy has a Z."""
    z = np.asarray(z_toys, dtype=float)
    n = np.isfinite(z).sum(axis=0)
    zero = (z <= 0.0).sum(axis=0)  # NaN compares False
    with np.errstate(invalid="ignore", divide="ignore"):
        frac: NDArray[np.float64] = np.where(n > 0, zero / np.maximum(n, 1), np.nan)
        err: NDArray[np.float64] = np.where(n > 0, 0.5 / np.sqrt(np.maximum(n, 1)), np.nan)
    return frac, err


def sidak_max_z_sf(z: ArrayLike, n_eff: float) -> NDArray[np.float64]:
    """``P(max Z >= z)`` of ``n_eff`` independent tests (Sidak): ``1 - (1 - Phi(-z))^N_eff``."""
    p = ndtr(-np.asarray(z, dtype=float))
    out: NDArray[np.float64] = np.asarray(-np.expm1(float(n_eff) * np.log1p(-p)))
    return out
