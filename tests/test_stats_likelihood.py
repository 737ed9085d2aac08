"""Blind-window likelihood: Newton profiles and joint fits against scipy, sigma_A against the
curvature of the profile likelihood, edge cases, nuisance compression and toys."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from gprpipe.stats.likelihood import (
    LAM_FLOOR,
    WindowModel,
    cholesky_jitter,
)
from gprpipe.stats.toys import SignalProcess, background_means, background_toys


def gp_like_window(k: int, scale: float, rel: float, seed: int, ls: float = 0.6):
    """Falling background, RBF-correlated relative uncertainty ``rel``, Gaussian template."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, k)
    b = scale * np.exp(-0.7 * x)
    K = np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / ls**2)
    C = rel**2 * np.outer(b, b) * K
    w = np.exp(-0.5 * (x / 0.5) ** 2)
    w *= 0.9 / w.sum()
    n = rng.poisson(np.maximum(b + cholesky_jitter(C) @ rng.standard_normal(k), 0)).astype(float)
    return n, b, C, w


def scipy_profile(A: float, n, b, L, w) -> float:
    """Reference profile with scipy BFGS on the centred NLL (analytic gradient)."""
    c = np.sum(n - np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0)), 0.0))

    def f(t):
        lam = np.maximum(b + L @ t + A * w, LAM_FLOOR)
        val = np.sum(lam - n) - np.sum(np.where(n > 0, n * np.log(lam / np.where(n > 0, n, 1)), 0))
        return val + 0.5 * t @ t, L.T @ (1.0 - n / lam) + t

    best = minimize(f, np.zeros(L.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-10})
    return float(best.fun + c)


def scipy_joint(n, b, L, w, a0: float) -> tuple[float, float]:
    c = np.sum(n - np.where(n > 0, n * np.log(np.where(n > 0, n, 1.0)), 0.0))
    s = 1.0 / np.sqrt(np.sum(w**2 / np.maximum(b, 1.0)))

    def f(p):
        A, t = p[0] * s, p[1:]
        lam = np.maximum(b + L @ t + A * w, LAM_FLOOR)
        val = np.sum(lam - n) - np.sum(np.where(n > 0, n * np.log(lam / np.where(n > 0, n, 1)), 0))
        r = 1.0 - n / lam
        return val + 0.5 * t @ t, np.r_[s * (w @ r), L.T @ r + t]

    x0 = np.r_[a0 / s, np.zeros(L.shape[1])]
    res = minimize(f, x0, jac=True, method="BFGS", options={"gtol": 1e-10})
    return float(res.x[0] * s), float(res.fun + c)


# ----------------------------------------------------------------------------------------
def test_cholesky_jitter_exact_singular_zero_and_k1():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(6, 6))
    C = M @ M.T + np.eye(6)
    L = cholesky_jitter(C)
    assert np.allclose(L @ L.T, C, rtol=0, atol=1e-12 * np.abs(C).max())
    assert np.allclose(L, np.tril(L))
    v = rng.normal(size=6)
    C1 = 4.0 * np.outer(v, v)  # rank one: needs jitter
    L1 = cholesky_jitter(C1)
    assert np.abs(L1 @ L1.T - C1).max() < 1e-6 * np.abs(C1).max()
    assert np.all(cholesky_jitter(np.zeros((3, 3))) == 0)
    assert cholesky_jitter(np.array([[4.0]]))[0, 0] == pytest.approx(2.0)


def test_nll_formula_and_floor():
    n = np.array([3.0, 0.0, 7.0])
    b = np.array([2.0, 1.0, 5.0])
    L = np.array([[0.5, 0.0, 0.0], [0.1, 0.2, 0.0], [0.3, 0.1, 0.4]])
    w = np.array([0.2, 0.5, 0.2])
    theta = np.array([0.3, -0.2, 0.1])
    lam = b + L @ theta + 2.0 * w
    expected = -np.sum(n * np.log(lam) - lam) + 0.5 * theta @ theta
    assert WindowModel(b, L, w).nll(2.0, theta, n) == pytest.approx(expected, rel=1e-14)
    # vectorised over rows, A broadcast
    out = WindowModel(b, L, w).nll(np.array([2.0, 2.0]), np.stack([theta, theta]), np.stack([n, n]))
    assert out.shape == (2,) and np.allclose(out, expected)
    # lam below zero is floored: finite value
    assert np.isfinite(WindowModel(b, L, w).nll(-100.0, theta, n))


@pytest.mark.parametrize(
    ("k", "scale", "rel", "seed"),
    [(1, 30.0, 0.1, 1), (5, 50.0, 0.05, 2), (20, 2000.0, 0.02, 3), (12, 3.0, 0.3, 4)],
)
def test_profile_matches_scipy(k, scale, rel, seed):
    n, b, C, w = gp_like_window(k, scale, rel, seed)
    L = cholesky_jitter(C)
    sigma = 1.0 / np.sqrt(np.sum(w**2 / b))
    for A in (0.0, 1.5 * sigma, 4.0 * sigma):
        mine, theta = WindowModel(b, L, w).profile(A, n)
        ref = scipy_profile(A, n, b, L, w)
        assert mine <= ref + 1e-9
        assert mine == pytest.approx(ref, abs=1e-8)
        assert WindowModel(b, L, w).nll(A, theta, n) == pytest.approx(mine, abs=1e-9)


def test_profile_vectorised_equals_rowwise():
    _n, b, C, w = gp_like_window(15, 500.0, 0.03, 7)
    L = cholesky_jitter(C)
    rng = np.random.default_rng(1)
    toys = background_toys(b, C, 40, rng, L=L).astype(float)
    A = np.linspace(0.0, 300.0, 40)
    vals, thetas = WindowModel(b, L, w).profile(A, toys)
    assert vals.shape == (40,) and thetas.shape == (40, 15)
    for i in (0, 17, 39):
        v, t = WindowModel(b, L, w).profile(A[i], toys[i])
        assert v == pytest.approx(vals[i], abs=1e-9)
        assert np.allclose(t, thetas[i], atol=1e-6)
    # leading axes (2, 20) work too
    v2, _ = WindowModel(b, L, w).profile(A.reshape(2, 20), toys.reshape(2, 20, 15))
    assert np.allclose(v2.ravel(), vals, atol=1e-9)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_fit_signal_matches_scipy_and_sigma_matches_curvature(seed):
    n, b, C, w = gp_like_window(18, 800.0, 0.02, seed)
    sigma0 = 1.0 / np.sqrt(np.sum(w**2 / b))
    rng = np.random.default_rng(seed)
    n = n + rng.poisson(2.5 * sigma0 * w)  # some signal
    L = cholesky_jitter(C)
    fit = WindowModel(b, L, w).fit(n)
    assert fit.converged
    a_ref, nll_ref = scipy_joint(n, b, L, w, 0.0)
    assert fit.nll_hat <= nll_ref + 1e-9
    assert fit.nll_hat == pytest.approx(nll_ref, abs=1e-8)
    assert fit.A_hat == pytest.approx(a_ref, rel=1e-4, abs=1e-4 * fit.sigma_A)
    # sigma_A from the observed information = 1/sqrt(curvature of the profile NLL)
    h = 0.05 * fit.sigma_A
    vals = [WindowModel(b, L, w).profile(fit.A_hat + d, n)[0] for d in (-h, 0.0, h)]
    curv = (vals[0] - 2 * vals[1] + vals[2]) / h**2
    assert fit.sigma_A == pytest.approx(1.0 / np.sqrt(curv), rel=2e-3)
    # profile at A_hat reproduces the joint minimum; theta_hat is consistent
    assert vals[1] == pytest.approx(fit.nll_hat, abs=1e-8)
    nll_fit = WindowModel(b, L, w).nll(fit.A_hat, fit.theta_hat, n)
    assert nll_fit == pytest.approx(fit.nll_hat, abs=1e-8)
    assert fit.nll0 == pytest.approx(WindowModel(b, L, w).profile(0.0, n)[0], abs=1e-8)


def test_fit_vectorised_over_toys():
    _n, b, C, w = gp_like_window(20, 1000.0, 0.02, 5)
    L = cholesky_jitter(C)
    toys = background_toys(b, C, 2000, np.random.default_rng(3), L=L).astype(float)
    fit = WindowModel(b, L, w).fit(toys)
    assert fit.A_hat.shape == (2000,) and fit.theta_hat.shape == (2000, 20)
    assert np.all(fit.converged)
    for i in (0, 999, 1999):
        single = WindowModel(b, L, w).fit(toys[i])
        assert single.A_hat == pytest.approx(fit.A_hat[i], abs=1e-6 * single.sigma_A)
        assert single.nll_hat == pytest.approx(fit.nll_hat[i], abs=1e-9)
    # pulls of background-only toys: mean ~0, width ~1
    pull = fit.A_hat / fit.sigma_A
    assert abs(np.mean(pull)) < 0.1 and abs(np.std(pull) - 1.0) < 0.06


def test_negative_signal_and_restriction():
    b = np.full(6, 100.0)
    w = np.array([0.05, 0.15, 0.25, 0.25, 0.15, 0.05])
    C = 4.0 * np.eye(6)
    n = np.array([100.0, 80.0, 70.0, 72.0, 85.0, 99.0])  # deficit
    L = cholesky_jitter(C)
    free = WindowModel(b, L, w).fit(n)
    assert free.A_hat < 0 and free.converged
    a_ref, _nll_ref = scipy_joint(n, b, L, w, -50.0)
    assert free.A_hat == pytest.approx(a_ref, rel=1e-5)
    pos = WindowModel(b, L, w).fit(n, allow_negative=False)
    assert pos.A_hat == 0.0
    assert pos.nll_hat == pytest.approx(WindowModel(b, L, w).profile(0.0, n)[0], abs=1e-9)
    assert pos.nll_hat >= free.nll_hat


@pytest.mark.parametrize(
    "case",
    ["k1", "zeros", "C0", "near_singular", "small_b", "all_empty"],
)
def test_edge_cases(case):
    if case == "k1":
        n, b, C, w = np.array([5.0]), np.array([4.0]), np.array([[1.0]]), np.array([0.9])
    elif case == "zeros":
        n = np.array([0.0, 0.0, 1.0, 0.0, 2.0])
        b = np.array([1.0, 1.2, 1.1, 0.9, 0.8])
        C = 0.01 * (np.ones((5, 5)) + np.eye(5))
        w = np.array([0.1, 0.2, 0.3, 0.2, 0.1])
    elif case == "C0":
        n = np.array([100.0, 120.0, 90.0, 110.0])
        b = np.full(4, 100.0)
        C = np.zeros((4, 4))
        w = np.array([0.2, 0.3, 0.3, 0.1])
    elif case == "near_singular":
        n = np.array([100.0, 120.0, 90.0, 110.0])
        b = np.full(4, 100.0)
        C = 25.0 * np.ones((4, 4)) + 1e-13 * np.eye(4)
        w = np.array([0.2, 0.3, 0.3, 0.1])
    elif case == "small_b":
        n = np.array([0.0, 1.0, 0.0])
        b = np.array([0.05, 0.1, 0.02])
        C = 1e-4 * np.eye(3)
        w = np.array([0.3, 0.4, 0.2])
    else:
        n = np.zeros(4)
        b = np.full(4, 2.0)
        C = 0.1 * np.eye(4)
        w = np.array([0.2, 0.3, 0.3, 0.1])
    L = cholesky_jitter(C)
    fit = WindowModel(b, L, w).fit(n)
    assert np.isfinite(fit.A_hat) and np.isfinite(fit.nll_hat)
    if case == "all_empty":
        # A -> -infinity until lam reaches 0: not identifiable, reported as not converged
        assert not fit.converged and fit.sigma_A == np.inf
        assert WindowModel(b, L, w).fit(n, allow_negative=False).A_hat == 0.0
        return
    assert fit.converged and np.isfinite(fit.sigma_A) and fit.sigma_A > 0
    a_ref, nll_ref = scipy_joint(n, b, L, w, 0.0)
    assert fit.nll_hat == pytest.approx(nll_ref, abs=1e-8)
    assert fit.A_hat == pytest.approx(a_ref, rel=1e-4, abs=1e-5)
    for A in (0.0, 3.0 * fit.sigma_A):
        assert WindowModel(b, L, w).profile(A, n)[0] == pytest.approx(
            scipy_profile(A, n, b, L, w), abs=1e-8
        )


def test_compression_is_exact_to_1e8():
    """Dropping nuisance directions with whitened information < 1e-10 changes nothing."""
    _n, b, C, w = gp_like_window(40, 5000.0, 0.01, 21, ls=1.0)
    L = cholesky_jitter(C)
    win = WindowModel(b, L, w)
    assert win.r < 20  # a smooth covariance has few relevant directions
    toys = background_toys(b, C, 300, np.random.default_rng(0), L=L).astype(float)
    A = np.full(300, 3.0 / np.sqrt(np.sum(w**2 / b)))
    full = WindowModel(b, L, w, rank_tol=0.0).profile(A, toys)[0]
    comp = WindowModel(b, L, w).profile(A, toys)[0]
    assert np.max(np.abs(full - comp)) < 1e-8 * np.max(np.abs(full)) + 1e-7
    f_full = WindowModel(b, L, w, rank_tol=0.0).fit(toys)
    f_comp = WindowModel(b, L, w).fit(toys)
    assert np.allclose(f_full.A_hat, f_comp.A_hat, rtol=0, atol=1e-6 * np.min(f_comp.sigma_A))
    assert np.allclose(f_full.sigma_A, f_comp.sigma_A, rtol=1e-8)


def test_background_toys_moments():
    b = np.array([50.0, 40.0, 30.0])
    C = np.array([[9.0, 6.0, 3.0], [6.0, 9.0, 6.0], [3.0, 6.0, 9.0]])
    rng = np.random.default_rng(42)
    toys = background_toys(b, C, 200_000, rng)
    assert toys.dtype.kind == "i" and toys.shape == (200_000, 3) and toys.min() >= 0
    assert np.allclose(toys.mean(axis=0), b, rtol=5e-3)
    assert np.allclose(np.cov(toys.T), C + np.diag(b), rtol=0.03, atol=0.5)
    # truncation at 0: clip or resample, never negative means
    bt = background_means(np.array([0.5]), np.array([[1.0]]), 10_000, rng, truncate="resample")
    assert bt.min() >= 0 and bt.mean() > 0.5
    # reproducible with a seed
    t1 = background_toys(b, C, 5, np.random.default_rng(9))
    t2 = background_toys(b, C, 5, np.random.default_rng(9))
    assert np.array_equal(t1, t2)


def test_signal_process_is_poisson_and_monotone():
    w = np.array([0.1, 0.5, 2.0])
    proc = SignalProcess(w, 100_000, np.random.default_rng(3))
    s_hi = proc(40.0)
    s_lo = proc(10.0)  # thinned from above
    s_mid = proc(25.0)  # split between cached points
    for A, s in ((40.0, s_hi), (10.0, s_lo), (25.0, s_mid)):
        assert np.allclose(s.mean(axis=0), A * w, rtol=0.02)
        assert np.allclose(s.var(axis=0), A * w, rtol=0.04)
    assert np.all(s_lo <= s_mid) and np.all(s_mid <= s_hi)
    assert np.array_equal(proc(25.0), s_mid)


def test_signal_process_refuses_negative_bins():
    """Poisson signal counts need w >= 0 (a leakage-aware template can dip below: numpy's
    'lam < 0 or lam contains NaNs' reached the scan's status)."""
    with pytest.raises(ValueError, match="negative or NaN bins"):
        SignalProcess(np.array([0.2, -0.01]), 10, np.random.default_rng(1))
